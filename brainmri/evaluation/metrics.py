"""Evaluation of a release folder on Testing, full and de-duplicated.

scikit-learn computes the metrics, matplotlib draws; bootstrap intervals
resample images with replacement. Works on any folder of class folders,
including one lacking some of the model's classes (metrics that need a class's
positives are then left out for it, and said so).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from brainmri import text
from brainmri.data.folders import list_classes, load_folder, split_roots
from brainmri.evaluation import plots
from brainmri.evaluation.audit import dedup_paths
from brainmri.inference.predictor import Predictor


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence over equal-width bins (the usual 15-bin definition)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count, for the reliability diagram."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    out = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        out["count"].append(int(inside.sum()))
        out["confidence"].append(float(confidence[inside].mean()) if inside.any() else float("nan"))
        out["accuracy"].append(float(correct[inside].mean()) if inside.any() else float("nan"))
    return out


def accuracy_of(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """Accuracy along ``axis`` (every resample at once): scikit-learn's ``accuracy_score`` for each."""
    return np.mean(y_true == y_pred, axis=axis)


def macro_f1_of(classes: list[int]):
    """Macro F1 over ``classes`` along ``axis`` (every resample at once): scikit-learn's ``f1_score(...,
    labels=classes, average="macro", zero_division=0)`` for each, as 2 TP / (2 TP + FP + FN), 0 where undefined."""

    def statistic(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
        scores = []
        for k in classes:
            truth, said = y_true == k, y_pred == k
            tp = np.sum(truth & said, axis=axis)
            denominator = 2 * tp + np.sum(truth != said, axis=axis)  # 2 TP + FP + FN
            scores.append(np.divide(2 * tp, denominator, out=np.zeros(np.shape(tp)), where=denominator > 0))
        return np.mean(scores, axis=0)

    return statistic


def bootstrap_ci(
    y_true: np.ndarray, y_pred: np.ndarray, metric, n: int = 1000, seed: int = 0, vectorized: bool = False
) -> list[float]:
    """The 95 % percentile interval of ``metric`` over ``n`` paired resamples of the images
    (``scipy.stats.bootstrap``; the percentile method, which stays defined when every resample scores the same).
    ``vectorized``: ``metric`` takes ``axis`` and scores every resample in one call (:func:`accuracy_of`)."""
    from scipy.stats import bootstrap

    result = bootstrap(
        (y_true, y_pred),
        metric,
        paired=True,
        vectorized=vectorized,
        n_resamples=n,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Everything in metrics.json for one evaluated set (labels index the model's classes)."""
    y_pred = probs.argmax(1)
    all_classes = list(range(len(labels)))
    present = sorted(set(y_true.tolist()))

    per_class = classification_report(
        y_true, y_pred, labels=all_classes, target_names=list(labels), zero_division=0, output_dict=True
    )
    roc: dict[str, float | None] = {}
    for index, label in enumerate(labels):
        positives = y_true == index
        roc[label] = float(roc_auc_score(positives, probs[:, index])) if 0 < positives.sum() < len(y_true) else None
    valid = [v for v in roc.values() if v is not None]
    roc["macro"] = float(np.mean(valid)) if valid else None
    w = precision_recall_fscore_support(y_true, y_pred, labels=present, average="weighted", zero_division=0)
    m = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "labels": list(labels),
        "classes_present": [labels[i] for i in present],
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci95": bootstrap_ci(y_true, y_pred, accuracy_of, seed=seed, vectorized=True),
        "macro_f1": float(m[2]),
        "macro_f1_ci95": bootstrap_ci(y_true, y_pred, macro_f1_of(present), seed=seed, vectorized=True),
        "macro_precision": float(m[0]),
        "macro_recall": float(m[1]),
        "weighted_f1": float(w[2]),
        "weighted_precision": float(w[0]),
        "weighted_recall": float(w[1]),
        "roc_auc": roc,
        "ece": expected_calibration_error(probs, y_true),
        "per_class": {
            label: {
                "precision": float(per_class[label]["precision"]),
                "recall": float(per_class[label]["recall"]),
                "f1": float(per_class[label]["f1-score"]),
                "support": int(per_class[label]["support"]),
            }
            for label in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=all_classes).tolist(),
        "confusion_matrix_normalized": confusion_matrix(y_true, y_pred, labels=all_classes, normalize="true").tolist(),
        "reliability": reliability(probs, y_true),
    }


def _figures(name: str, metrics: dict[str, Any], y_true, probs, labels, out: Path) -> None:
    matrix = np.array(metrics["confusion_matrix"])
    plots.confusion(matrix, labels, out / f"confusion_{name}.png", normalize=False)
    plots.roc_curves(y_true, probs, labels, out / f"roc_{name}.png")
    plots.reliability_diagram(metrics["reliability"], metrics["ece"], out / f"reliability_{name}.png")
    headline_figures(metrics, labels, out, name)


def headline_figures(metrics: dict[str, Any], labels: list[str], out: Path, name: str = "full") -> list[Path]:
    """The Model tab's two figures (row-normalised confusion matrix, reliability diagram) from saved ``metrics``, in
    every language: ``<figure>.png`` in English, ``<figure>.<lang>.png`` in the others."""
    written = []
    for lang in text.LANGUAGES:
        suffix = "" if lang == "en" else f".{lang}"
        written.append(
            plots.confusion(
                np.array(metrics["confusion_matrix_normalized"]),
                labels,
                out / f"confusion_{name}_normalized{suffix}.png",
                normalize=True,
                lang=lang,
            )
        )
        written.append(
            plots.reliability_diagram(
                metrics["reliability"], metrics["ece"], out / f"reliability_{name}{suffix}.png", lang=lang
            )
        )
    return written


def evaluate_release(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cache_dir=None,
    gallery: bool = True,
    seed: int = 0,
    masks=None,
) -> dict[str, Any]:
    """Metrics on Testing, full and de-duplicated; ``masks`` (the tumour masks folder) outlines the
    tumour beside each heatmap of the Grad-CAM gallery."""
    predictor = Predictor.from_pretrained(checkpoint, backend="torch")
    labels = predictor.labels
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _, test_root = split_roots(data)
    test = load_folder(
        test_root, predictor.preprocess, cache_dir=cache_dir, classes=list_classes(test_root), progress=True
    ).relabel(labels)
    probs = predictor.probabilities(predictor.logits(test.images))
    y_true = test.labels

    keep_paths, _ = dedup_paths(data, cache_dir=cache_dir)
    keep = set(keep_paths)
    dedup_index = np.array([i for i, p in enumerate(test.paths) if p in keep], dtype=np.int64)

    results: dict[str, Any] = {}
    for name, index in (("full", np.arange(len(test))), ("dedup", dedup_index)):
        metrics = compute_metrics(y_true[index], probs[index], labels, seed=seed)
        _figures(name, metrics, y_true[index], probs[index], labels, out)
        results[name] = metrics
    results["meta"] = {
        "checkpoint": str(checkpoint),
        "data": str(Path(test_root).name),
        "architecture": predictor.config["architecture"],
        "temperature": predictor.temperature,
        "weights_sha256": predictor.config.get("weights_sha256"),
        "input_size": list(predictor.preprocess.input_size),
        "skipped_files": [list(s) for s in test.skipped],
        "dedup_rule": "Testing minus images duplicated (exact or near) in Training, one image per duplicate "
        "group within Testing",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (out / "metrics.json").write_text(json.dumps(results, indent=2))

    _write_misclassified(out / "misclassified.csv", test.paths, y_true, probs, labels, keep)
    if gallery:
        mask_files = None
        if masks:  # the radiologists' mask of each image, at the image's own size
            mask_files = [Path(masks) / Path(rel).with_suffix(".png") for rel in test.dataset_paths()]
        cam_gallery(predictor, test, probs, out / "gradcam_gallery.png", seed=seed, mask_files=mask_files)
    return results


def evaluate_set(
    predictor: Predictor,
    image_set,
    out: str | os.PathLike,
    name: str,
    *,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics, confusion matrices, ROC and reliability figures and the misclassified list of one image set
    (e.g. a held-out collection): ``metrics.json`` as ``{name: metrics, "meta": ...}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = predictor.labels
    image_set = image_set.relabel(labels)
    probs = predictor.probabilities(predictor.logits(image_set.images))
    metrics = compute_metrics(image_set.labels, probs, labels, seed=seed)
    _figures(name, metrics, image_set.labels, probs, labels, out)
    results = {
        name: metrics,
        "meta": {
            "architecture": predictor.config["architecture"],
            "temperature": predictor.temperature,
            "weights_sha256": predictor.config.get("weights_sha256"),
            "input_size": list(predictor.preprocess.input_size),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **(meta or {}),
        },
    }
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    _write_misclassified(out / "misclassified.csv", image_set.paths, image_set.labels, probs, labels)
    np.save(out / "probabilities.npy", probs.astype(np.float32))
    return results


def _write_misclassified(
    path: Path,
    paths: list[str],
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    in_dedup: set[str] | None = None,
) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "path",
                "true",
                "predicted",
                *(["in_dedup"] if in_dedup is not None else []),
                *[f"p_{label}" for label in labels],
            ]
        )
        for i in np.flatnonzero(probs.argmax(1) != y_true):
            writer.writerow(
                [
                    paths[i],
                    labels[y_true[i]],
                    labels[probs[i].argmax()],
                    *([paths[i] in in_dedup] if in_dedup is not None else []),
                    *[f"{p:.4f}" for p in probs[i]],
                ]
            )


def outline(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 255), width: int = 1) -> np.ndarray:
    """``image`` (H x W gray or H x W x 3) as RGB with the border of ``mask`` (>0 inside), ``width`` pixels
    wide, drawn in ``colour``."""
    from scipy import ndimage

    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy()
    inside = mask > 0
    interior = ndimage.binary_erosion(inside, iterations=width, border_value=1)
    rgb[inside & ~interior] = colour
    return rgb


def cam_gallery(
    predictor: Predictor,
    test,
    probs: np.ndarray,
    path,
    per_kind: int = 2,
    seed: int = 0,
    mask_files: list[Path] | None = None,
) -> Path:
    """Per class: correctly and wrongly classified Testing images, each beside its Grad-CAM overlay drawn on
    the slice at its own resolution (as the app and the report draw it); with ``mask_files`` (one per image,
    missing where unknown), the radiologists' tumour outline on both."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, titles = [], []
    predicted = probs.argmax(1)
    for index, label in enumerate(predictor.labels):
        for kind, chosen in (
            ("right", np.flatnonzero((test.labels == index) & (predicted == index))),
            ("wrong", np.flatnonzero((test.labels == index) & (predicted != index))),
        ):
            for i in rng.permutation(chosen)[:per_kind]:
                explanation = predictor.explain(test.root / test.paths[i])
                p = explanation.probabilities[explanation.target]
                pair = [np.repeat(explanation.original[..., None], 3, axis=2), explanation.overlay_original]
                if mask_files is not None and mask_files[i].is_file():
                    with Image.open(mask_files[i]) as handle:
                        size = explanation.original.shape[::-1]
                        mask = np.asarray(handle.convert("L").resize(size, Image.NEAREST)) > 127
                    pair = [outline(image, mask, width=max(1, round(max(size) / 200))) for image in pair]
                images += pair
                titles += [f"{label} ({kind})", f"→ {explanation.target} {p:.2f}"]
    return plots.image_grid(
        images,
        titles,
        path,
        columns=2 * per_kind * 2,
        suptitle="Grad-CAM on Testing, on each slice at its own resolution: true class "
        "(right/wrong) and predicted class"
        + ("; cyan: the radiologists' tumour outline" if mask_files is not None else ""),
    )
