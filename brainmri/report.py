"""Read a saved evaluation (metrics.json, figures, model card) and format it for people.

Nothing here computes a metric: the app's Model tab shows exactly what
``train.py evaluate`` wrote.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

FIGURES = {
    "confusion": "confusion_full.png",
    "confusion_normalized": "confusion_full_normalized.png",
    "confusion_dedup": "confusion_dedup_normalized.png",
    "roc": "roc_full.png",
    "reliability": "reliability_full.png",
    "curves": "curves.png",
    "gallery": "gradcam_gallery.png",
}


def load_metrics(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def figure(folder: str | Path, key: str) -> str | None:
    path = Path(folder) / FIGURES[key]
    return str(path) if path.is_file() else None


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _ci(values: list[float]) -> str:
    return f"[{100 * values[0]:.2f}, {100 * values[1]:.2f}]"


def headline_markdown(metrics: dict[str, Any]) -> str:
    rows = ["| | Testing (full) | Testing (de-duplicated) |", "|---|---|---|"]
    full, dedup = metrics["full"], metrics.get("dedup", {})

    def both(fn):
        return f"| {fn(full)} | {fn(dedup) if dedup else '—'} |"

    rows.append("| images" + both(lambda m: str(m["n"])))
    rows.append("| accuracy (95 % CI)" + both(lambda m: f"{_pct(m['accuracy'])} {_ci(m['accuracy_ci95'])}"))
    rows.append("| macro F1 (95 % CI)" + both(lambda m: f"{_pct(m['macro_f1'])} {_ci(m['macro_f1_ci95'])}"))
    rows.append("| weighted F1" + both(lambda m: _pct(m["weighted_f1"])))
    rows.append("| macro ROC-AUC (one-vs-rest)" + both(lambda m: f"{m['roc_auc']['macro']:.4f}"))
    rows.append("| expected calibration error" + both(lambda m: f"{m['ece']:.4f}"))
    return "\n".join(rows)


def per_class_rows(metrics: dict[str, Any], which: str = "full") -> list[list[Any]]:
    m = metrics[which]
    out = []
    for label in m["labels"]:
        c = m["per_class"][label]
        auc = m["roc_auc"].get(label)
        out.append([label, round(c["precision"], 4), round(c["recall"], 4), round(c["f1"], 4), c["support"],
                    None if auc is None else round(auc, 4)])
    return out


PER_CLASS_HEADERS = ["class", "precision", "recall", "F1", "support", "ROC-AUC"]


def model_card(folder: str | Path) -> str:
    """The model card's body (README.md without its YAML front matter)."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return "_This model folder has no model card._"
    text = path.read_text()
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4:]
    return text.strip()


def batch_csv(rows: list[list[Any]], headers: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()
