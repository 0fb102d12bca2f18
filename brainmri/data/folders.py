"""Dataset folders → a decoded, resized uint8 cache, class lists and splits.

Layout (Kaggle's): ``ROOT/<class name>/<image file>``; classes are the sorted
folder names. Every file is decoded once through :mod:`brainmri.io.images` and
:class:`brainmri.inference.preprocess.Preprocess`; the result (``N x S x S`` uint8 plus
per-file facts: sha256, original size and mode, perceptual hash) is kept in an
ignored cache folder keyed by the file list, the preprocessing and this
module's version, so later runs start in seconds. Unreadable files are
reported with their path and reason and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from brainmri.inference.preprocess import Preprocess
from brainmri.io.images import ImageLoadError, load_grayscale

log = logging.getLogger(__name__)

CACHE_VERSION = 2
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("BRAINMRI_CACHE", Path.cwd() / ".cache" / "brainmri"))


def list_classes(root: str | os.PathLike) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset folder at {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class folders (expected ROOT/<class>/<image>)")
    return classes


def check_classes(found: list[str], label_names: list[str], *, allow_subset: bool) -> None:
    """Folder classes must equal the model's labels (training) or be a subset (evaluation)."""
    unknown = [c for c in found if c not in label_names]
    if unknown:
        raise ValueError(f"class folders {unknown} are not among the model's labels {label_names}")
    if not allow_subset and list(found) != list(label_names):
        raise ValueError(f"class folders {found} differ from the model's labels {label_names}")


@dataclass
class ImageSet:
    """Decoded images of one folder, ready for training or evaluation."""

    root: Path
    classes: list[str]
    paths: list[str]  # relative to root
    labels: np.ndarray  # int64 index into `classes`
    images: np.ndarray  # N x S x S uint8, what the model sees before normalisation
    sha256: list[str]
    phash: np.ndarray  # N uint64 perceptual hashes
    sizes: np.ndarray  # N x 2 (width, height) of the original file
    modes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(
            self.root,
            self.classes,
            [self.paths[i] for i in index],
            self.labels[index],
            self.images[index],
            [self.sha256[i] for i in index],
            self.phash[index],
            self.sizes[index],
            [self.modes[i] for i in index],
            list(self.skipped),
        )

    def dataset_paths(self) -> list[str]:
        """Paths relative to the dataset root (``Training/<class>/<file>``), as the origins file and the masks
        folder name them; a set already rooted at the dataset (e.g. joined folders) keeps its paths."""
        if self.root.name in ("Training", "Testing"):
            return [f"{self.root.name}/{p}" for p in self.paths]
        return list(self.paths)

    def relabel(self, label_names: list[str]) -> "ImageSet":
        """Re-index labels into a model's ``label_names`` (for folders lacking some classes)."""
        check_classes(self.classes, label_names, allow_subset=True)
        mapping = np.array([label_names.index(c) for c in self.classes], dtype=np.int64)
        out = self.subset(np.arange(len(self)))
        out.labels, out.classes = mapping[self.labels], list(label_names)
        return out


def join(sets: list[ImageSet], prefixes: list[str], root: Path) -> ImageSet:
    """One set of several (the same classes), in order, each one's paths prefixed ``prefix/`` ("" for none) so
    that the sources stay apart (a split file, the origins file); ``root``: the joined set's root."""
    classes = sets[0].classes
    if any(s.classes != classes for s in sets):
        raise ValueError("image sets with different classes cannot be joined")
    return ImageSet(
        root=Path(root),
        classes=list(classes),
        paths=[f"{prefix}/{p}" if prefix else p for s, prefix in zip(sets, prefixes) for p in s.paths],
        labels=np.concatenate([s.labels for s in sets]),
        images=np.concatenate([np.asarray(s.images) for s in sets]),
        sha256=[h for s in sets for h in s.sha256],
        phash=np.concatenate([s.phash for s in sets]),
        sizes=np.concatenate([s.sizes for s in sets]),
        modes=[m for s in sets for m in s.modes],
        skipped=[x for s in sets for x in s.skipped],
    )


def image_files(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (by suffix), sorted."""
    return [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def list_files(root: Path, classes: list[str]) -> list[tuple[str, int]]:
    return [
        (str(path.relative_to(root)), index) for index, name in enumerate(classes) for path in image_files(root / name)
    ]


def _cache_key(root: Path, files: list[tuple[str, int]], preprocess: Preprocess) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{preprocess}".encode())
    for rel, label in files:
        stat = (root / rel).stat()
        digest.update(f"{rel}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _decode(root: Path, rel: str, preprocess: Preprocess):
    path = root / rel
    try:
        data = path.read_bytes()
        gray = load_grayscale(path)
    except (ImageLoadError, OSError) as err:
        return None, str(err)
    except Exception as err:  # a damaged file must never stop a run
        return None, f"{type(err).__name__}: {err}"
    try:  # original size and mode: the shortcut the audit shows
        with Image.open(path) as probe:
            size, mode = probe.size, probe.mode
    except OSError:
        size, mode = (gray.shape[1], gray.shape[0]), "DICOM"
    fitted = preprocess.fit(gray)
    phash = int(str(imagehash.phash(Image.fromarray(fitted))), 16)
    return (fitted, hashlib.sha256(data).hexdigest(), phash, size, mode), None


def load_folder(
    root: str | os.PathLike,
    preprocess: Preprocess,
    *,
    cache_dir: str | os.PathLike | None = None,
    classes: list[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> ImageSet:
    """Decode (or read from cache) every image under ``root``; unreadable files are skipped and reported."""
    root = Path(root)
    classes = classes or list_classes(root)
    files = list_files(root, classes)
    if not files:
        raise ValueError(f"no image files under {root}")
    return load_files(root, files, preprocess, classes=classes, cache_dir=cache_dir, workers=workers, progress=progress)


def load_files(
    root: str | os.PathLike,
    files: list[tuple[str, int]],
    preprocess: Preprocess,
    *,
    classes: list[str],
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> ImageSet:
    """Decode (or read from cache) the listed ``(path relative to root, label index)`` files, in that order;
    unreadable files are skipped and reported. Any source whose labels are not its folder names (e.g.
    :mod:`brainmri.data.lgg`) comes through here, so it shares the decoding, the cache and the preprocessing."""
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(root, files, preprocess)
    cached = _read_cache(cache_dir, key, root, classes)
    if cached is not None:
        return cached

    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        results = list(
            tqdm(
                pool.map(lambda f: _decode(root, f[0], preprocess), files),
                total=len(files),
                desc=f"decoding {root.name}",
                disable=None if progress else True,
                leave=False,
            )
        )
    keep, skipped = [], []
    for (rel, label), (value, error) in zip(files, results):
        if error is not None:
            skipped.append((rel, error))
            log.warning("skipping unreadable image %s: %s", root / rel, error)
        else:
            keep.append((rel, label, value))
    if not keep:
        raise ValueError(f"none of the {len(files)} files under {root} could be read")
    size = preprocess.image_size
    images = np.stack([v[0] for _, _, v in keep]) if keep else np.zeros((0, size, size), np.uint8)
    image_set = ImageSet(
        root=root,
        classes=classes,
        paths=[r for r, _, _ in keep],
        labels=np.array([lab for _, lab, _ in keep], dtype=np.int64),
        images=images,
        sha256=[v[1] for _, _, v in keep],
        phash=np.array([v[2] for _, _, v in keep], dtype=np.uint64),
        sizes=np.array([v[3] for _, _, v in keep], dtype=np.int64),
        modes=[v[4] for _, _, v in keep],
        skipped=skipped,
    )
    _write_cache(cache_dir, key, image_set)
    return image_set


def _read_cache(cache_dir: Path, key: str, root: Path, classes: list[str]) -> ImageSet | None:
    meta_path, array_path = cache_dir / f"{key}.json", cache_dir / f"{key}.npy"
    if not (meta_path.is_file() and array_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    for rel, reason in meta["skipped"]:
        log.warning("skipping unreadable image %s: %s", root / rel, reason)
    return ImageSet(
        root,
        classes,
        meta["paths"],
        np.array(meta["labels"], dtype=np.int64),
        np.asarray(images),
        meta["sha256"],
        np.array([int(h, 16) for h in meta["phash"]], dtype=np.uint64),
        np.array(meta["sizes"], dtype=np.int64),
        meta["modes"],
        [tuple(s) for s in meta["skipped"]],
    )


def _write_cache(cache_dir: Path, key: str, s: ImageSet) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.{os.getpid()}.npy"
    np.save(tmp, s.images, allow_pickle=False)
    os.replace(tmp, cache_dir / f"{key}.npy")
    meta = {
        "paths": s.paths,
        "labels": s.labels.tolist(),
        "sha256": s.sha256,
        "phash": [f"{int(h):016x}" for h in s.phash],
        "sizes": s.sizes.tolist(),
        "modes": s.modes,
        "skipped": [list(x) for x in s.skipped],
    }
    tmp = cache_dir / f".{key}.{os.getpid()}.json"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, cache_dir / f"{key}.json")


def split_train_val(
    image_set: ImageSet, groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split that keeps each near-duplicate group on one side."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 0.5:
        raise ValueError("val_fraction must be between 0 and 0.5")
    n_splits = max(2, round(1 / val_fraction))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_index, val_index = next(folds.split(np.zeros(len(image_set)), image_set.labels, groups))
    return np.sort(train_index), np.sort(val_index)


def split_roots(data: str | os.PathLike) -> tuple[Path | None, Path]:
    """(Training folder or None, Testing folder) for a dataset root or a single folder of classes."""
    data = Path(data)
    if (data / "Testing").is_dir():
        return (data / "Training" if (data / "Training").is_dir() else None), data / "Testing"
    return None, data


SPLIT_FILE = "split.csv"


def read_split(run_or_file: str | Path) -> dict[str, tuple[str, str]]:
    """A finished run's split (``RUN/split.csv``, or that file itself): ``{path: (class name, "train" | "val")}``,
    paths relative to the run's Training folder."""
    import csv

    path = Path(run_or_file)
    path = path / SPLIT_FILE if path.is_dir() else path
    with open(path, newline="") as handle:
        return {row["path"]: (row["label"], row["split"]) for row in csv.DictReader(handle)}


def load_run_split(run: str | Path):
    """The training and validation ImageSets of a finished run, from its args.json and split.csv."""
    from brainmri.inference.release import read_config

    run = Path(run)
    args = json.loads((run / "args.json").read_text())
    config = read_config(run / "release")
    preprocess = Preprocess.from_release_config(config)
    root = Path(args["data"])
    root = root / "Training" if (root / "Training").is_dir() else root
    full = load_folder(root, preprocess, cache_dir=args.get("cache_dir"), classes=list(config["label_names"]))
    if args.get("lgg"):  # a run trained with TCGA-LGG: its slices are in the split file too
        from brainmri.data.lgg import COLLECTION, load_lgg, training_sites

        lgg = load_lgg(
            args["lgg"],
            preprocess,
            list(config["label_names"]),
            sites=training_sites(args.get("lgg_holdout")),
            cache_dir=args.get("cache_dir"),
        )
        full = join([full, lgg.images], ["", COLLECTION], full.root)
    side = {path: split for path, (_, split) in read_split(run).items()}
    index = {name: [i for i, p in enumerate(full.paths) if side.get(p) == name] for name in ("train", "val")}
    return full.subset(index["train"]), full.subset(index["val"])
