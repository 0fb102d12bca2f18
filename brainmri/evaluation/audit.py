"""Duplicate audit of a Kaggle-layout dataset, and the de-duplicated Testing subset.

Exact duplicates share a sha256; near duplicates share a perceptual hash
neighbourhood *and* look alike pixel for pixel (see :mod:`brainmri.data.dedup`).
Hashes are computed on one fixed preprocessing (``AUDIT_PREPROCESS``) so that
the audit and every evaluation agree on the same subset, whatever the model's
input size.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from brainmri.data.dedup import duplicate_groups, find_pairs
from brainmri.data.folders import ImageSet, list_classes, load_folder, split_roots
from brainmri.evaluation import plots
from brainmri.inference.preprocess import Preprocess

AUDIT_PREPROCESS = Preprocess(
    input_size=(3, 128, 128),
    interpolation="bilinear",
    crop_pct=1.0,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)
HEAD_CROP_PREPROCESS = replace(AUDIT_PREPROCESS, content_crop=True)  # what the shipped models see, at 128 px


def dedup_testing(train: ImageSet | None, test: ImageSet) -> dict[str, Any]:
    """Testing images kept after removing those duplicated in Training and all but one of each
    duplicate group inside Testing."""
    within = find_pairs(test.phash, test.images, test.sha256)
    cross = (
        []
        if train is None
        else find_pairs(test.phash, test.images, test.sha256, train.phash, train.images, train.sha256)
    )
    in_train = {p.a for p in cross}
    groups = duplicate_groups(len(test), within)
    keep, seen = [], set()
    for index in range(len(test)):
        if index in in_train or groups[index] in seen:
            continue
        seen.add(groups[index])
        keep.append(index)
    return {"keep": keep, "within": within, "cross": cross}


def dedup_paths(data: str | os.PathLike, cache_dir=None) -> tuple[list[str], int]:
    """Relative paths (within Testing) of the de-duplicated Testing subset, and Testing's size."""
    train_root, test_root = split_roots(data)
    test = load_folder(test_root, AUDIT_PREPROCESS, cache_dir=cache_dir)
    train = load_folder(train_root, AUDIT_PREPROCESS, cache_dir=cache_dir) if train_root else None
    result = dedup_testing(train, test)
    return [test.paths[i] for i in result["keep"]], len(test)


def _framing(images: np.ndarray) -> np.ndarray:
    """Rows and columns of (near) black in each model input: padding and native background alike."""
    images = np.asarray(images)
    return np.column_stack([(images.max(axis=2) <= 2).sum(axis=1), (images.max(axis=1) <= 2).sum(axis=1)])


def shortcut_strength(image_set: ImageSet, seed: int = 0, cropped: ImageSet | None = None) -> dict[str, float]:
    """Cross-validated accuracy of a small tree predicting the class from file metadata
    (size and colour mode, aspect ratio) versus from the framing that the model input
    still shows (number of black rows and columns) after padding alone (``image_set``,
    :data:`AUDIT_PREPROCESS`) and after the head crop and padding (``cropped``: the same
    images through the bundled model's preprocessing); size and mode are the same for
    every model input."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    modes = sorted(set(image_set.modes))
    raw = np.column_stack([image_set.sizes, [modes.index(m) for m in image_set.modes]])
    aspect = (image_set.sizes[:, 0] / image_set.sizes[:, 1]).reshape(-1, 1)
    framing = _framing(image_set.images)
    tree = DecisionTreeClassifier(max_depth=6, random_state=seed)
    majority = Counter(image_set.labels.tolist()).most_common(1)[0][1] / len(image_set)
    return {
        "majority_class": float(majority),
        "from_size_and_mode": float(cross_val_score(tree, raw, image_set.labels, cv=5).mean()),
        "from_original_aspect": float(cross_val_score(tree, aspect, image_set.labels, cv=5).mean()),
        "from_model_input_black_rows_cols": float(cross_val_score(tree, framing, image_set.labels, cv=5).mean()),
        "after_pipeline_size_mode": "every image becomes one size, one grayscale channel",
        **(
            {
                "from_model_input_black_rows_cols_head_crop": float(
                    cross_val_score(tree, _framing(cropped.images), cropped.labels, cv=5).mean()
                )
            }
            if cropped is not None
            else {}
        ),
    }


def _pair_rows(pairs, a: ImageSet, b: ImageSet, name_a: str, name_b: str):
    for p in pairs:
        yield [
            name_a,
            a.paths[p.a],
            a.classes[a.labels[p.a]],
            name_b,
            b.paths[p.b],
            b.classes[b.labels[p.b]],
            p.kind,
            p.hamming,
            f"{p.correlation:.4f}",
        ]


def run_audit(data: str | os.PathLike, out: str | os.PathLike, cache_dir=None) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_root, test_root = split_roots(data)
    if train_root is None:
        raise ValueError(f"{data} needs Training/ and Testing/ folders for a cross-split audit")
    classes = sorted(set(list_classes(train_root)) | set(list_classes(test_root)))
    train = load_folder(train_root, AUDIT_PREPROCESS, cache_dir=cache_dir, progress=True).relabel(classes)
    test = load_folder(test_root, AUDIT_PREPROCESS, cache_dir=cache_dir, progress=True).relabel(classes)
    within_train = find_pairs(train.phash, train.images, train.sha256)
    dedup = dedup_testing(train, test)

    with open(out / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["split_a", "path_a", "class_a", "split_b", "path_b", "class_b", "kind", "hamming", "correlation"]
        )
        writer.writerows(_pair_rows(within_train, train, train, "Training", "Training"))
        writer.writerows(_pair_rows(dedup["within"], test, test, "Testing", "Testing"))
        writer.writerows(_pair_rows(dedup["cross"], test, train, "Testing", "Training"))

    per_class: dict[str, dict[str, int]] = {}
    exact_cross = {p.a for p in dedup["cross"] if p.kind == "exact"}
    near_cross = {p.a for p in dedup["cross"] if p.kind == "near"} - exact_cross
    kept = np.zeros(len(test), dtype=bool)
    kept[dedup["keep"]] = True
    for index, name in enumerate(classes):
        in_class = test.labels == index
        per_class[name] = {
            "testing": int(in_class.sum()),
            "testing_exact_dup_in_training": int(sum(in_class[i] for i in exact_cross)),
            "testing_near_dup_in_training": int(sum(in_class[i] for i in near_cross)),
            "testing_dup_pairs_within_testing": int(sum(in_class[p.a] for p in dedup["within"])),
            "training": int((train.labels == index).sum()),
            "training_dup_pairs_within_training": int(sum(train.labels[p.a] == index for p in within_train)),
            "cross_class_pairs": int(
                sum(test.labels[p.a] != train.labels[p.b] and test.labels[p.a] == index for p in dedup["cross"])
            ),
            "dedup_testing": int(kept[in_class].sum()),
        }
    summary = {
        "training_images": len(train),
        "testing_images": len(test),
        "skipped_files": [list(s) for s in train.skipped + test.skipped],
        "pairs_within_training": len(within_train),
        "pairs_within_testing": len(dedup["within"]),
        "pairs_testing_training": len(dedup["cross"]),
        "testing_with_exact_dup_in_training": len(exact_cross),
        "testing_with_near_dup_in_training": len(near_cross),
        "dedup_testing_size": int(kept.sum()),
    }
    cropped = load_folder(train_root, HEAD_CROP_PREPROCESS, cache_dir=cache_dir).relabel(classes)
    report = {
        "summary": summary,
        "per_class": per_class,
        "shortcut": shortcut_strength(train, cropped=cropped),
        "method": {"near": "pHash Hamming <= 10 and 64x64 thumbnail correlation >= 0.95", "exact": "sha256"},
    }
    (out / "audit.json").write_text(json.dumps(report, indent=2))
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        keys = list(next(iter(per_class.values())))
        writer.writerow(["class", *keys])
        for name, row in per_class.items():
            writer.writerow([name, *row.values()])
    (out / "dedup_testing.txt").write_text("\n".join(test.paths[i] for i in dedup["keep"]) + "\n")

    plots.class_counts({"Training": per_class_count(train), "Testing": per_class_count(test)}, out / "class_counts.png")
    both_sizes = np.concatenate([train.sizes, test.sizes])
    plots.sizes_and_modes(
        both_sizes,
        train.modes + test.modes,
        np.concatenate([train.labels, test.labels]),
        classes,
        out / "sizes_and_modes.png",
    )
    sample_grid(train, out / "samples.png")
    return report


def per_class_count(image_set: ImageSet) -> dict[str, int]:
    return {name: int((image_set.labels == i).sum()) for i, name in enumerate(image_set.classes)}


def sample_grid(image_set: ImageSet, path, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    images, titles = [], []
    for index, name in enumerate(image_set.classes):
        chosen = np.flatnonzero(image_set.labels == index)
        for i in rng.choice(chosen, size=min(per_class, len(chosen)), replace=False):
            images.append(np.asarray(image_set.images[i]))
            w, h = image_set.sizes[i]
            titles.append(f"{name}\n{w}x{h} {image_set.modes[i]}")
    return plots.image_grid(images, titles, path, columns=per_class, suptitle="Samples per class (original size, mode)")
