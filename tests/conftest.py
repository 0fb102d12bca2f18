"""Shared fixtures: a tiny synthetic Kaggle-layout dataset and a tiny timm release."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
TINY_ARCH = "test_convnext"
TINY_SIZE = 32

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network

# Tests that train (through these fixtures), start servers or browsers, or measure: `-m "not slow"` skips them.
SLOW_FIXTURES = {"trained_run", "run", "exported", "server", "browser", "app_module"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def synthetic_slice(label: int, rng: np.random.Generator, size=(64, 64)) -> Image.Image:
    """A dark 'head' ellipse with a bright blob whose place depends on the class."""
    width, height = size
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.1, height * 0.1, width * 0.9, height * 0.9], fill=int(rng.integers(60, 90)))
    if label != 2:  # "notumor" has no blob
        cx, cy = [(0.3, 0.3), (0.7, 0.3), None, (0.5, 0.7)][label]
        r = 0.12 * min(size) * rng.uniform(0.8, 1.2)
        x, y = cx * width + rng.normal(0, 2), cy * height + rng.normal(0, 2)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=230)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (height, width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_dataset(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    modes = ["L", "RGB", "P"]
    for split, count in per_class.items():
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = (int(rng.integers(48, 80)), int(rng.integers(48, 80)))
                mode = modes[i % 3]
                fmt = "PNG" if i % 2 or mode == "P" else "JPEG"
                image = synthetic_slice(label, rng, size).convert(mode)
                image.save(folder / f"{split[:2]}-{name}-{i:03d}.{fmt.lower().replace('jpeg', 'jpg')}", format=fmt)
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Training 24/class, Testing 6/class; planted duplicates and one corrupt file."""
    root = write_dataset(tmp_path_factory.mktemp("data") / "mri", {"Training": 24, "Testing": 6})
    train_file = root / "Training" / "glioma" / "Tr-glioma-001.png"
    shutil.copy(train_file, root / "Testing" / "glioma" / "planted-exact.png")
    near = Image.open(root / "Training" / "pituitary" / "Tr-pituitary-002.png").convert("L")
    near = Image.fromarray(np.clip(np.asarray(near, dtype=np.int16) + 6, 0, 255).astype(np.uint8))
    near.save(root / "Testing" / "pituitary" / "planted-near.jpg", quality=80)
    (root / "Training" / "notumor" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    import torch

    from brainmri.checkpoint import save_release
    from brainmri.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=TINY_SIZE).eval()
    return save_release(model, tmp_path_factory.mktemp("release") / "tiny", CLASSES, temperature=1.5)


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def real_images(per_class: int = 1) -> list[tuple[Path, str]]:
    if not REAL_DATA.is_dir():
        pytest.skip("the real dataset is not beside the repository")
    out = []
    for name in CLASSES:
        files = sorted((REAL_DATA / "Testing" / name).iterdir())[:per_class]
        out += [(f, name) for f in files]
    return out


@pytest.fixture(scope="session")
def trained_run(dataset, cache_dir, tmp_path_factory) -> Path:
    """A run folder from `train.py train` on the synthetic data (3 short epochs, then evaluation)."""
    import train as cli

    out = tmp_path_factory.mktemp("run") / "scratch"
    args = ["train", "--data", str(dataset), "--out", str(out), "--arch", TINY_ARCH, "--no-pretrained",
            "--image-size", str(TINY_SIZE), "--batch-size", "16", "--steps-per-epoch", "3", "--val-fraction", "0.2",
            "--cache-dir", str(cache_dir), "--threads", "1", "--recipe", "scratch", "--epochs", "3"]
    assert cli.main(args) == 0
    return out


def start_app(monkeypatch, model: Path | None, **env: str):
    """Import app.py afresh (with BRAINMRI_MODEL=model and any extra environment) and serve it on a
    free loopback port; returns (app module, url). The caller closes it with app.demo.close()."""
    import importlib
    import socket
    import sys

    if model is None:
        monkeypatch.delenv("BRAINMRI_MODEL", raising=False)
    else:
        monkeypatch.setenv("BRAINMRI_MODEL", str(model))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("app", None)
    app = importlib.import_module("app")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(app.demo, app.parse_args(["--port", str(port)]), prevent_thread_lock=True, quiet=True)
    return app, f"http://127.0.0.1:{port}/"
