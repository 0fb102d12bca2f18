"""Figures (matplotlib, Agg backend): training curves, data views, evaluation plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

from brainmri import text

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(history: list[dict[str, Any]], path) -> Path:
    epochs = [r["epoch"] + 1 for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train (augmented, smoothed labels)")
    ax_loss.plot(epochs, [r.get("val_loss", np.nan) for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train (augmented)")
    ax_acc.plot(epochs, [r.get("val_acc", np.nan) for r in history], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def image_grid(images: list[np.ndarray], titles: list[str], path, *, columns: int = 8, suptitle: str = "") -> Path:
    rows = max(1, math.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def augmented_batch(batch, preprocess, path) -> Path:
    """Undo normalisation of one augmented training batch and draw it."""
    import torch

    mean = torch.tensor(preprocess.mean).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std).view(1, -1, 1, 1)
    pixels = ((batch.float().cpu() * std + mean)[:, 0] * 255).clamp(0, 255).byte().numpy()
    return image_grid(list(pixels), [""] * len(pixels), path, suptitle="One augmented training batch")


def confusion(matrix: np.ndarray, labels: list[str], path, *, normalize: bool, lang: str = "en") -> Path:
    """``matrix``: counts, or with ``normalize`` the row-normalised matrix (scikit-learn's normalize="true"); its
    words and class names in ``lang``."""
    from sklearn.metrics import ConfusionMatrixDisplay

    words = text.t("figures", lang)
    values = matrix.astype(float) if normalize else matrix.astype(int)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay(values, display_labels=[text.class_name(k, lang) for k in labels]).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format=".2f" if normalize else "d"
    )
    if lang == "fr":  # the decimal comma
        for cell in ax.texts:
            cell.set_text(cell.get_text().replace(".", ","))
    ax.set(xlabel=words["predicted"], ylabel=words["true"])
    ax.set_title(words["confusion_normalised" if normalize else "confusion_counts"])
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _save(fig, path)


def roc_curves(y_true: np.ndarray, probs: np.ndarray, labels: list[str], path) -> Path:
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for index, label in enumerate(labels):
        positives = y_true == index
        if positives.any() and not positives.all():
            RocCurveDisplay.from_predictions(positives, probs[:, index], name=label, ax=ax)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_title("One-vs-rest ROC")
    return _save(fig, path)


def reliability_diagram(rel: dict[str, list[float]], ece: float, path, lang: str = "en") -> Path:
    words = text.t("figures", lang)
    edges = np.array(rel["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(5, 5))
    bars = ax.bar(
        centres,
        np.nan_to_num(rel["accuracy"]),
        width=edges[1] - edges[0],
        edgecolor="k",
        alpha=0.7,
        label=words["bars"],
    )
    # how many slices each bar stands on: a bin of three slices is noise, not miscalibration
    ax.bar_label(bars, labels=[str(n) if n else "" for n in rel.get("count", [0] * len(bars))], fontsize=7, padding=2)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label=words["perfect"])
    ax.set(xlabel=words["confidence"], ylabel=words["accuracy"], xlim=(0, 1), ylim=(0, 1.08))
    ax.set_title(text.fill(words["reliability"], lang, ece=float(ece)), pad=24)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False, fontsize=8)  # above the bars
    return _save(fig, path)


def class_counts(counts: dict[str, dict[str, int]], path) -> Path:
    splits = list(counts)
    classes = sorted({c for s in counts.values() for c in s})
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(7, 4))
    for offset, split in enumerate(splits):
        bars = ax.bar(x + offset * 0.4 - 0.2, [counts[split].get(c, 0) for c in classes], width=0.4, label=split)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, classes)
    ax.set(ylabel="images", title="Images per class and split")
    ax.legend()
    return _save(fig, path)


def sizes_and_modes(sizes: np.ndarray, modes: list[str], labels: np.ndarray, classes: list[str], path) -> Path:
    fig, (ax_size, ax_mode) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, name in enumerate(classes):
        chosen = labels == index
        ax_size.scatter(sizes[chosen, 0], sizes[chosen, 1], s=6, alpha=0.4, label=name)
    ax_size.set(
        xlabel="width (px)", ylabel="height (px)", title="Original image size by class", xscale="log", yscale="log"
    )
    ax_size.legend(markerscale=3)
    all_modes = sorted(set(modes))
    bottom = np.zeros(len(classes))
    for mode in all_modes:
        share = np.array(
            [
                np.mean([m == mode for m, lab in zip(modes, labels) if lab == i]) if (labels == i).any() else 0
                for i in range(len(classes))
            ]
        )
        ax_mode.bar(classes, share, bottom=bottom, label=f"mode {mode}")
        bottom += share
    ax_mode.set(ylabel="share of images", title="Colour mode by class")
    ax_mode.legend()
    fig.suptitle("Class-correlated image sizes and modes: a shortcut the pipeline removes")
    return _save(fig, path)


def _signal_name(name: str, lang: str) -> str:
    """An abstention signal (brainmri.evaluation.selective) named for people."""
    return text.t("figures.signals", lang).get(name, name)


def _risk_panel(ax, curves: dict[str, dict[str, Any]], words: dict[str, str], lang: str, ok=None) -> None:
    for name, block in curves.items():
        area = text.fill("{aurc:.3f}", lang, aurc=float(block["aurc"]))
        ax.plot(block["coverage"], block["risk"], label=f"{_signal_name(name, lang)} ({words['area']} {area})")
    if ok:  # the page's own rule: the share it answers "ok" and its error there
        ax.plot([ok["ok_share"]], [1 - ok["ok_accuracy"]], "k*", markersize=11, label=words["verdict_point"])
    ax.set(xlim=(0, 1), ylim=(0, None))
    as_percent = matplotlib.ticker.FuncFormatter(lambda value, _: text.percent(value, lang, 0))
    ax.xaxis.set_major_formatter(as_percent)
    ax.yaxis.set_major_formatter(as_percent)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def risk_coverage_curves(
    curves: dict[str, dict[str, Any]], path, title: str = "", lang: str = "en", ok: dict | None = None
) -> Path:
    """Error rate among the answered images against the share answered, one line per signal (the area under each
    line in the legend: lower is better), the verdict's "ok" answers as a star when ``ok`` is given."""
    words = text.t("figures", lang)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    _risk_panel(ax, curves, words, lang, ok)
    ax.set(xlabel=words["coverage"], ylabel=words["risk"], title=title or words["risk_title"])
    return _save(fig, path)


def risk_coverage_panels(panels: list[dict[str, Any]], path, lang: str = "en") -> Path:
    """Several sets side by side (``{"title", "curves", "ok"}`` each, the title a ``[figures]`` key), one y-axis
    for all so the sets compare at a glance: the Model tab's figure."""
    return _save(risk_coverage_panels_figure(panels, lang), path)


def risk_coverage_panels_figure(panels: list[dict[str, Any]], lang: str = "en"):
    """:func:`risk_coverage_panels`' figure, unsaved; the shared y-axis reaches the highest error of every panel."""
    words = text.t("figures", lang)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _risk_panel(ax, panel["curves"], words, lang, panel.get("ok"))
        named = panel.get("named")  # a new source's institutions, in records from 2026-12-07 on
        title = text.fill(words[panel["title"] + "_named"], lang, source=named) if named else words[panel["title"]]
        ax.set_title(title, fontsize=10)
    # each panel's ylim=(0, None) froze the top at the first panel's data: the others' lines were cut off above it
    errors = [max(block["risk"]) for panel in panels for block in panel["curves"].values() if len(block["risk"])]
    errors += [1 - panel["ok"]["ok_accuracy"] for panel in panels if panel.get("ok")]
    axes[0][0].set_ylim(0, 1.05 * max(errors, default=0) or 1)
    fig.supxlabel(words["coverage"])
    fig.supylabel(words["risk"])
    fig.suptitle(words["risk_title"])
    return fig
