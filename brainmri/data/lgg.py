"""TCGA-LGG as a fourth collection: a second source with real FLAIR, T1 and T1 with contrast.

``ROOT/<patient>/NNN_<sequence>.jpg`` (``flair`` on every slice, ``t1`` and ``t1c`` where the patient has
them) with ``NNN_mask.png``, the FLAIR abnormality traced by a reader, pixel-aligned with all three;
``ROOT/slices.csv`` lists every slice (``patient, site, slice, slices_in_scan, sequences, mask_pixels``).
The site (institution) is the second part of the patient id.

Slice-level labels (:class:`LabelRule`): **glioma** where the mask covers at least 1 % of the slice;
**notumor** where the mask is empty and the slice lies in the middle 60 % of the scan (the first and last
slices show the skull top and base, which the Kaggle set has no class for); every other slice (a small
or partial lesion, an empty slice at either end) gets no label and is neither trained nor judged on. Each
labelled slice counts once per sequence it has: a sequence is a view of the same anatomy, so the patient,
not the image, is the unit a split keeps on one side (:func:`split_patients`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainmri.data.folders import ImageSet, load_files
from brainmri.inference.preprocess import Preprocess

COLLECTION = "tcga-lgg"
LICENCE = "cc-by-nc-sa-4.0"  # TCGA-LGG's terms (TCIA, Buda et al. 2019): weights trained on it inherit them
SEQUENCES = ("flair", "t1", "t1c")
SITES = ("CS", "DU", "EZ", "FG")
SLICE_PIXELS = 256 * 256  # every slice of the source is 256 x 256 (checked on load)
GLIOMA, NO_TUMOUR = "glioma", "notumor"
COLUMNS = {"patient", "site", "slice", "slices_in_scan", "sequences", "mask_pixels"}


@dataclass(frozen=True)
class LabelRule:
    """Which slices are labelled, and how (module docstring)."""

    min_tumour_share: float = 0.01
    middle: float = 0.6

    def label(self, mask_pixels: int, slice_number: int, slices_in_scan: int) -> str | None:
        if mask_pixels >= self.min_tumour_share * SLICE_PIXELS:
            return GLIOMA
        if mask_pixels > 0:
            return None
        edge = (1.0 - self.middle) / 2.0 * slices_in_scan
        return NO_TUMOUR if edge < slice_number <= slices_in_scan - edge else None

    def describe(self) -> str:
        return (
            f"glioma: FLAIR mask >= {100 * self.min_tumour_share:g} % of the slice; notumor: empty mask, "
            f"middle {100 * self.middle:g} % of the scan; other slices unlabelled; every sequence of a slice"
        )


@dataclass(frozen=True)
class Slice:
    patient: str
    site: str
    number: int  # 1 = the scan's first slice
    slices_in_scan: int
    sequences: tuple[str, ...]
    mask_pixels: int

    def image_path(self, sequence: str) -> str:
        return f"{self.patient}/{self.number:03d}_{sequence}.jpg"

    def mask_path(self) -> str:
        return f"{self.patient}/{self.number:03d}_mask.png"


def read_slices(root: str | os.PathLike) -> list[Slice]:
    """Every slice listed in ``ROOT/slices.csv``."""
    path = Path(root) / "slices.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no TCGA-LGG slice table at {path}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = COLUMNS - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}")
        slices = []
        for row in reader:
            sequences = tuple(s for s in row["sequences"].split(";") if s)
            unknown = set(sequences) - set(SEQUENCES)
            if unknown or row["site"] not in SITES:
                raise ValueError(f"{path}: unknown sequence {sorted(unknown)} or site {row['site']!r}")
            slices.append(
                Slice(
                    row["patient"],
                    row["site"],
                    int(row["slice"]),
                    int(row["slices_in_scan"]),
                    sequences,
                    int(row["mask_pixels"]),
                )
            )
    return slices


@dataclass
class LggSet:
    """Decoded labelled slices with what each one is: patient, site, sequence, slice number, mask share."""

    images: ImageSet  # root: the TCGA-LGG folder; paths: ``<patient>/NNN_<sequence>.jpg``
    patient: np.ndarray
    site: np.ndarray
    sequence: np.ndarray
    slice_number: np.ndarray
    mask_share: np.ndarray
    mask_paths: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> "LggSet":
        index = np.asarray(index, dtype=np.int64)
        return LggSet(
            self.images.subset(index),
            self.patient[index],
            self.site[index],
            self.sequence[index],
            self.slice_number[index],
            self.mask_share[index],
            [self.mask_paths[i] for i in index],
        )

    def where(self, *, sites=None, sequences=None) -> "LggSet":
        keep = np.ones(len(self), dtype=bool)
        if sites is not None:
            keep &= np.isin(self.site, list(sites))
        if sequences is not None:
            keep &= np.isin(self.sequence, list(sequences))
        return self.subset(np.flatnonzero(keep))


def check_sites(sites) -> list[str]:
    unknown = sorted(set(sites) - set(SITES))
    if unknown:
        raise ValueError(f"unknown TCGA-LGG sites {unknown}; the collection has {list(SITES)}")
    return list(sites)


def training_sites(holdout=None) -> list[str]:
    """The institutions a run trains with: all but the held-out ones."""
    held = check_sites(holdout or [])
    return [site for site in SITES if site not in held]


def load_lgg(
    root: str | os.PathLike,
    preprocess: Preprocess,
    label_names: list[str],
    *,
    sites=None,
    sequences=SEQUENCES,
    rule: LabelRule = LabelRule(),
    cache_dir=None,
    progress: bool = False,
) -> LggSet:
    """The labelled slices of ``sites`` (default: all), every sequence of ``sequences`` each has, decoded through
    ``preprocess`` into the same cache as the Kaggle folders; labels index into ``label_names``."""
    root = Path(root)
    sites = check_sites(sites if sites is not None else SITES)
    for name in (GLIOMA, NO_TUMOUR):
        if name not in label_names:
            raise ValueError(f"TCGA-LGG labels slices {GLIOMA!r} or {NO_TUMOUR!r}; the model knows {label_names}")
    rows = []
    for s in read_slices(root):
        label = rule.label(s.mask_pixels, s.number, s.slices_in_scan)
        if label is None or s.site not in sites:
            continue
        rows += [(s, sequence, label) for sequence in SEQUENCES if sequence in s.sequences and sequence in sequences]
    if not rows:
        raise ValueError(f"no labelled TCGA-LGG slice of sites {sites} and sequences {list(sequences)} under {root}")
    files = [(s.image_path(sequence), label_names.index(label)) for s, sequence, label in rows]
    images = load_files(root, files, preprocess, classes=list(label_names), cache_dir=cache_dir, progress=progress)
    if images.skipped:
        raise ValueError(f"{len(images.skipped)} TCGA-LGG images could not be read (first: {images.skipped[0]})")
    if (images.sizes != 256).any():
        raise ValueError("TCGA-LGG slices are expected to be 256 x 256 (the mask rule counts pixels of that size)")
    return LggSet(
        images,
        np.array([s.patient for s, _, _ in rows]),
        np.array([s.site for s, _, _ in rows]),
        np.array([q for _, q, _ in rows]),
        np.array([s.number for s, _, _ in rows]),
        np.array([s.mask_pixels / SLICE_PIXELS for s, _, _ in rows]),
        [s.mask_path() for s, _, _ in rows],
    )


def split_patients(lgg: LggSet, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices with every patient's slices on one side (about ``val_fraction`` of the
    patients in validation, at least one)."""
    patients = np.unique(lgg.patient)
    if len(patients) < 2:
        raise ValueError("a patient split needs at least two patients")
    order = np.random.default_rng(seed).permutation(patients)
    n_val = min(len(patients) - 1, max(1, round(val_fraction * len(patients))))
    val = np.isin(lgg.patient, order[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


def scan(root: str | os.PathLike, patient: str, sequence: str = "flair") -> np.ndarray:
    """One patient's whole scan of ``sequence`` as ``Z x 256 x 256`` uint8, first slice first (the Scan tab's input
    once written as a volume file); every slice must have the sequence."""
    from brainmri.io.images import load_grayscale

    slices = sorted((s for s in read_slices(root) if s.patient == patient), key=lambda s: s.number)
    if not slices:
        raise ValueError(f"no patient {patient!r} in {root}")
    if any(sequence not in s.sequences for s in slices):
        raise ValueError(f"patient {patient} lacks {sequence} on some slices")
    return np.stack([load_grayscale(Path(root) / s.image_path(sequence)) for s in slices])


def load_lgg_masks(lgg: LggSet, preprocess: Preprocess, cache_dir=None):
    """The reader's FLAIR masks through each image's own preprocessing (a :class:`~brainmri.data.masks.MaskSet`;
    every labelled slice has its mask file, empty on "notumor" slices)."""
    from brainmri.data.masks import load_masks

    return load_masks(lgg.images, lgg.images.root, preprocess, cache_dir=cache_dir, mask_paths=lgg.mask_paths)
