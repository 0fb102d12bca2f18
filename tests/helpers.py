"""What the tests share: synthetic slices and datasets, PNG, DICOM and NIfTI builders, the real images,
free loopback ports and the app server (fixtures stay in conftest.py)."""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
TINY_ARCH = "test_convnext"
TINY_SIZE = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dicom_bytes(pixels: np.ndarray | None, *, compressed: bool = False, **tags) -> bytes:
    """An MR DICOM file (uint16 pixels, MONOCHROME2, a patient name and ID that must never show up) with
    ``tags`` set; ``pixels`` of shape (frames, H, W) makes a multi-frame file; None: no pixel data;
    ``compressed``: 8-bit pixels as baseline JPEG (encapsulated)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if compressed else ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "SECRET-ID-42"
    ds.Modality = "MR"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        if compressed:
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            buffer = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
            ds.PixelData = encapsulate([buffer.getvalue()])
            ds["PixelData"].VR = "OB"
        else:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
            if pixels.ndim == 3:
                ds.NumberOfFrames = pixels.shape[0]
            ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_series(slices: list[np.ndarray], series_uid: str | None = None, spacing: float = 5.0, **tags) -> list[bytes]:
    """One DICOM file per slice (uint8 slices scaled to 12 bits), in slice order, each placed along z."""
    from pydicom.uid import generate_uid

    series_uid = series_uid or generate_uid()
    return [
        dicom_bytes(
            s.astype(np.uint16) * 16,
            SeriesInstanceUID=series_uid,
            InstanceNumber=i + 1,
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0, 0, spacing * i],
            **tags,
        )
        for i, s in enumerate(slices)
    ]


def nifti_bytes(voxels: np.ndarray, affine: np.ndarray | None = None, gz: bool = False) -> bytes:
    """A NIfTI-1 file of ``voxels`` (X x Y x Z) with ``affine`` (default: 1 mm RAS+)."""
    import gzip

    import nibabel

    image = nibabel.Nifti1Image(voxels, np.eye(4) if affine is None else affine)
    data = image.to_bytes()
    return gzip.compress(data) if gz else data


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


def start_app(monkeypatch, model: Path | None, **env: str):
    """Import app.py afresh (with BRAINMRI_MODEL=model and any extra environment) and serve it on a
    free loopback port; returns (app module, url). The caller closes it with app.demo.close()."""
    import importlib
    import sys

    if model is None:
        monkeypatch.delenv("BRAINMRI_MODEL", raising=False)
    else:
        monkeypatch.setenv("BRAINMRI_MODEL", str(model))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("app", None)
    app = importlib.import_module("app")
    port = free_port()
    app.launch(app.demo, app.parse_args(["--port", str(port)]), prevent_thread_lock=True, quiet=True)
    return app, f"http://127.0.0.1:{port}/"


def synthetic_scan(tmp_path, dataset) -> Path:
    """A small NIfTI volume: eight synthetic Testing slices (64 px) stacked axially."""
    files = sorted((dataset / "Testing").rglob("*.png"))[:8]
    stack = np.stack([np.asarray(Image.open(f).convert("L").resize((64, 64))) for f in files], axis=-1)
    voxels = np.flip(np.swapaxes(stack, 0, 1), axis=(0, 1)).astype(np.float32)  # X x Y x Z as viewers store it
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(nifti_bytes(np.ascontiguousarray(voxels), gz=True))
    return path


TINY_MODEL = ["--arch", TINY_ARCH, "--no-pretrained", "--image-size", str(TINY_SIZE)]


def tiny_options(cache_dir, steps: int = 3, val_fraction: float = 0.2) -> list[str]:
    """The options every short training run of the tests shares (batches of 16, a few steps, one thread)."""
    options = ["--batch-size", "16", "--steps-per-epoch", str(steps), "--val-fraction", str(val_fraction)]
    return options + ["--cache-dir", str(cache_dir), "--threads", "1"]


def tiny_run(command: str, dataset, out, cache_dir, *extra: str, steps: int = 3, val_fraction: float = 0.2) -> list:
    """``train.py COMMAND`` on the synthetic data with the tiny model, then ``extra``."""
    head = [command, "--data", str(dataset), "--out", str(out), *TINY_MODEL]
    return head + tiny_options(cache_dir, steps, val_fraction) + list(extra)


def synthetic_origin(path: str) -> str:
    """Synthetic collections: even-numbered tumour files 'figshare', odd 'sartaj'; notumor even 'br35h'."""
    name = Path(path).stem
    number = int(name.split("-")[-1]) if name.split("-")[-1].isdigit() else 1
    if "/notumor/" in path:
        return "br35h" if number % 2 == 0 else "sartaj"
    return "figshare" if number % 2 == 0 else "sartaj"


def tiny_trainer(dataset, out, cache_dir, **overrides):
    """A Trainer of the tiny model on the synthetic data (the scratch recipe, one epoch of batches of 16, one
    thread), ``overrides`` being TrainConfig fields."""
    from brainmri.training.config import TrainConfig
    from brainmri.training.trainer import Trainer

    fields = dict(arch=TINY_ARCH, pretrained=False, image_size=TINY_SIZE, epochs=1, batch_size=16, threads=1)
    fields.update(recipe="scratch", cache_dir=str(cache_dir))
    fields.update(overrides)
    return Trainer(TrainConfig(data=str(dataset), out=str(out), **fields))


# patient id -> slices in the scan; the site is the id's second part, as in the source
PATIENTS = {
    "TCGA_CS_0001_20000101": 20,
    "TCGA_CS_0002_20000101": 20,
    "TCGA_FG_0003_20000101": 20,
    "TCGA_FG_0004_20000101": 20,
    "TCGA_DU_0005_20000101": 20,
    "TCGA_DU_0006_20000101": 20,
}
TUMOUR_SLICES = {9, 10, 11}  # a blob covering well over 1 % of the slice
SMALL_SLICE = 12  # a lesion under 1 %: unlabelled


def write_lgg(root: Path, seed: int = 0) -> Path:
    """A TCGA-LGG-shaped folder: 256 px slices, FLAIR/T1/T1C (the last patient FLAIR only), masks, slices.csv."""
    rng = np.random.default_rng(seed)
    rows = []
    for p, (patient, count) in enumerate(PATIENTS.items()):
        folder = root / patient
        folder.mkdir(parents=True)
        sequences = ("flair",) if p == len(PATIENTS) - 1 else ("t1", "flair", "t1c")
        for number in range(1, count + 1):
            tumour = number in TUMOUR_SLICES
            image = np.asarray(synthetic_slice(0 if tumour else 2, rng, (256, 256)))
            mask = np.zeros((256, 256), np.uint8)
            if tumour:
                mask[image > 200] = 255
            elif number == SMALL_SLICE:
                mask[100:105, 100:105] = 255
            for sequence in sequences:
                Image.fromarray(image).save(folder / f"{number:03d}_{sequence}.jpg", quality=90)
            Image.fromarray(mask).convert("1").save(folder / f"{number:03d}_mask.png")
            rows.append([patient, patient.split("_")[1], number, count, ";".join(sequences), int((mask > 0).sum())])
    with open(root / "slices.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "site", "slice", "slices_in_scan", "sequences", "mask_pixels"])
        writer.writerows(rows)
    return root


def parsed_train_options(*flags: str) -> dict:
    """``train.py train --data d --out o FLAGS`` as the command line parses it."""
    import argparse

    from brainmri.commands.training import add_train_parser

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    return vars(parser.parse_args(["train", "--data", "d", "--out", "o", *flags]))


def measure(command: str, release, data, out, *extra: str) -> list[str]:
    """``train.py COMMAND --checkpoint RELEASE --data DATA --out OUT`` then ``extra``: a command that measures."""
    return [command, "--checkpoint", str(release), "--data", str(data), "--out", str(out), *extra]


def plain_preprocess(size: int = 64, content_crop: bool = True):
    """A Preprocess of ``size`` px, bilinear, no centre crop, mean and std 0.5 (the tests' arithmetic stays simple)."""
    from brainmri.inference.preprocess import Preprocess

    config = {"input_size": (3, size, size), "interpolation": "bilinear", "crop_pct": 1.0, "mean": (0.5,) * 3}
    return Preprocess.from_config({**config, "std": (0.5,) * 3}, content_crop=content_crop)


class FakeRequest:
    """What a page handler reads of gr.Request: the browser's headers."""

    def __init__(self, accept_language: str):
        self.headers = {"accept-language": accept_language}
