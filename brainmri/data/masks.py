"""Tumour masks mapped onto exactly what the model sees.

The radiologists' masks of the figshare slices (``MASKS/<Training|Testing>/<class>/<name>.png``,
255 inside the tumour, aligned pixel for pixel with the image of the same name)
go through the image's own geometry (:meth:`brainmri.inference.preprocess.Preprocess.fit_mask`:
the same head crop box, padding and resize). They serve the localisation yardstick
(:mod:`brainmri.evaluation.localisation`) and, optionally, training (where to look). A
"notumor" slice has no tumour, so an empty mask is right for it; a tumour slice
without a mask file (SARTAJ) has no supervision.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from brainmri.data.folders import ImageSet, default_cache_dir
from brainmri.inference.preprocess import Preprocess
from brainmri.io.images import load_grayscale

NO_TUMOUR = "notumor"
MASK_CACHE_VERSION = 1


@dataclass
class MaskSet:
    masks: np.ndarray  # N x S x S uint8, 255 inside the tumour (zeros where there is no mask)
    annotated: np.ndarray  # N bool: a radiologist's mask exists for the image

    def supervised(self, labels: np.ndarray, classes: list[str]) -> np.ndarray:
        """Images whose mask is known: annotated ones, and "notumor" ones (empty mask)."""
        empty = labels == classes.index(NO_TUMOUR) if NO_TUMOUR in classes else np.zeros(len(labels), bool)
        return self.annotated | empty

    def subset(self, index) -> "MaskSet":
        return MaskSet(self.masks[index], self.annotated[index])


def _fit_one(preprocess: Preprocess, image_path: Path, mask_path: Path) -> np.ndarray | None:
    if not mask_path.is_file():
        return None
    with Image.open(mask_path) as handle:
        mask = np.asarray(handle.convert("L"))
    return preprocess.fit_mask(load_grayscale(image_path), mask)


def load_masks(
    image_set: ImageSet,
    mask_root: str | os.PathLike,
    preprocess: Preprocess,
    *,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    mask_paths: list[str] | None = None,
) -> MaskSet:
    """Masks for every image of ``image_set`` at the model's input size (read from cache after the first call).

    Each image's mask is ``mask_root/<its dataset path>.png`` (the figshare layout), or ``mask_root/<path>`` for
    the ``mask_paths`` given, one per image (a source whose masks are named otherwise, e.g. TCGA-LGG)."""
    mask_root = Path(mask_root)
    if not mask_root.is_dir():
        raise FileNotFoundError(f"no masks folder at {mask_root}")
    if mask_paths is not None and len(mask_paths) != len(image_set):
        raise ValueError(f"{len(mask_paths)} mask paths for {len(image_set)} images")
    relative = (
        image_set.dataset_paths()
        if mask_paths is None
        else [f"{rel}|{mask}" for rel, mask in zip(image_set.dataset_paths(), mask_paths)]
    )
    digest = hashlib.sha256(f"{MASK_CACHE_VERSION}|{preprocess}|{mask_root.resolve()}".encode())
    for rel in relative:
        digest.update(f"{rel}\n".encode())
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"masks-{digest.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return MaskSet(stored["masks"], stored["annotated"])
    masks_of = (
        [mask_root / Path(rel).with_suffix(".png") for rel in image_set.dataset_paths()]
        if mask_paths is None
        else [mask_root / mask for mask in mask_paths]
    )
    jobs = [(image_set.root / path, mask) for path, mask in zip(image_set.paths, masks_of)]
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        fitted = list(pool.map(lambda job: _fit_one(preprocess, *job), jobs))
    size = preprocess.image_size
    masks = (
        np.stack([m if m is not None else np.zeros((size, size), np.uint8) for m in fitted])
        if fitted
        else np.zeros((0, size, size), np.uint8)
    )
    result = MaskSet(masks, np.array([m is not None for m in fitted], dtype=bool))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{path.stem}.{os.getpid()}.npz"
    np.savez_compressed(tmp, masks=result.masks, annotated=result.annotated)
    os.replace(tmp, path)
    return result
