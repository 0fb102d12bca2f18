"""Shared fixtures: a tiny synthetic Kaggle-layout dataset and a tiny timm release."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import CLASSES, TINY_ARCH, TINY_SIZE, synthetic_origin, tiny_run, write_dataset, write_lgg

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Tests that train, start servers or browsers, or measure carry @pytest.mark.slow (or a module's pytestmark),
# put on by hand; `-m "not slow"` skips them.


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
def bundled():
    """The bundled model (assets/model) as the page serves it, loaded once for every test that reads real slices."""
    from brainmri import Predictor

    return Predictor.from_pretrained(Path(__file__).resolve().parents[1] / "assets" / "model")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    import torch

    from brainmri.inference.release import save_release
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=TINY_SIZE).eval()
    return save_release(model, tmp_path_factory.mktemp("release") / "tiny", CLASSES, temperature=1.5)


@pytest.fixture(scope="session")
def trained_run(dataset, cache_dir, tmp_path_factory) -> Path:
    """A run folder from `train.py train` on the synthetic data (3 short epochs, then evaluation)."""
    import train as cli

    out = tmp_path_factory.mktemp("run") / "scratch"
    args = tiny_run("train", str(dataset), str(out), str(cache_dir), "--recipe", "scratch", "--epochs", "3")
    assert cli.main(args) == 0
    return out


@pytest.fixture(scope="session")
def run(trained_run) -> Path:
    """The trained run folder, by its short name."""
    return trained_run


@pytest.fixture(scope="session")
def collections(dataset, tmp_path_factory):
    """An origins CSV for the synthetic dataset and masks (the bright blob) for its 'figshare' images."""
    folder = tmp_path_factory.mktemp("collections")
    masks = folder / "masks"
    rows = []
    for path in sorted(dataset.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(dataset).as_posix()
        rows.append((rel, synthetic_origin(rel)))
        if rows[-1][1] == "figshare" and path.name != "corrupt.jpg":
            target = masks / Path(rel).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            gray = np.asarray(Image.open(path).convert("L"))
            Image.fromarray(((gray > 180) * 255).astype(np.uint8)).save(target)
    with open(folder / "origins.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "origin"])
        writer.writerows(rows)
    return folder / "origins.csv", masks


@pytest.fixture(scope="session")
def lgg_root(tmp_path_factory) -> Path:
    """A TCGA-LGG-shaped folder of six synthetic patients (helpers.write_lgg)."""
    return write_lgg(tmp_path_factory.mktemp("tcga-lgg") / "tcga-lgg")
