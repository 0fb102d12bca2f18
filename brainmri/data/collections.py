"""Where each image came from, and leave-one-collection-out splits.

The Kaggle dataset merges three collections (figshare, SARTAJ, Br35H). Outside
SARTAJ the collection gives the class away (every Br35H slice is "notumor", every
figshare slice a tumour), so a model can score on Testing by recognising the
collection. Training on two collections and evaluating on every image of the
third measures what a model learned about tumours; images of the training
collections that are exact or near duplicates of a held-out image are left out
of training first (the audit's detector, :func:`brainmri.data.dedup.find_pairs`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainmri.data.dedup import find_pairs
from brainmri.data.folders import ImageSet, join

COLLECTIONS = ("figshare", "sartaj", "br35h")


def read_origins(path: str | os.PathLike) -> dict[str, str]:
    """``{"Training/glioma/Tr-gl_0001.jpg": "figshare", ...}`` from the origins CSV (``file,origin``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no origins file at {path}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file", "origin"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must have the columns file,origin")
        origins = {row["file"]: row["origin"] for row in reader}
    unknown = sorted(set(origins.values()) - set(COLLECTIONS))
    if unknown:
        raise ValueError(f"{path} names unknown collections {unknown}; expected {list(COLLECTIONS)}")
    return origins


def origin_of(image_set: ImageSet, origins: dict[str, str]) -> np.ndarray:
    """The collection of every image of ``image_set`` (keys are its paths relative to the dataset root)."""
    paths = image_set.dataset_paths()
    missing = [p for p in paths if p not in origins]
    if missing:
        raise ValueError(f"{len(missing)} images of {image_set.root} have no origin (first: {missing[0]})")
    return np.array([origins[p] for p in paths])


def concat(sets: list[ImageSet]) -> ImageSet:
    """One set of several (the same classes); paths are prefixed with their folder's name."""
    return join(sets, [s.root.name for s in sets], sets[0].root.parent)


@dataclass
class Holdout:
    collection: str
    train_index: np.ndarray  # Training images that may be trained on (other collections, no duplicate of the held-out)
    heldout: ImageSet  # every image of the held-out collection, Training and Testing folders
    dropped_duplicates: list[str]  # Training paths of other collections left out as duplicates of held-out images

    def summary(self) -> dict:
        return {
            "collection": self.collection,
            "train_candidates": int(len(self.train_index)),
            "heldout_images": len(self.heldout),
            "heldout_per_class": {c: int((self.heldout.labels == i).sum()) for i, c in enumerate(self.heldout.classes)},
            "dropped_duplicates": len(self.dropped_duplicates),
        }


def plan_holdout(training: ImageSet, testing: ImageSet, origins: dict[str, str], collection: str) -> Holdout:
    """Split ``training`` into what may be trained on and gather the held-out ``collection`` from both folders."""
    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r}; choose one of {list(COLLECTIONS)}")
    train_origin, test_origin = origin_of(training, origins), origin_of(testing, origins)
    held = concat(
        [
            training.subset(np.flatnonzero(train_origin == collection)),
            testing.subset(np.flatnonzero(test_origin == collection)),
        ]
    )
    if len(held) == 0:
        raise ValueError(f"no image of collection {collection!r} in {training.root.parent}")
    others = np.flatnonzero(train_origin != collection)
    pairs = find_pairs(
        training.phash[others],
        np.asarray(training.images)[others],
        [training.sha256[i] for i in others],
        held.phash,
        held.images,
        held.sha256,
    )
    duplicate = np.zeros(len(others), dtype=bool)
    duplicate[[p.a for p in pairs]] = True
    return Holdout(collection, others[~duplicate], held, [training.paths[i] for i in others[duplicate]])
