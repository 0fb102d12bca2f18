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
    "risk_coverage": "risk_coverage.png",
}


def load_metrics(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_json(folder: str | Path, name: str) -> dict[str, Any] | None:
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else None


TESTING_SELECTIVE = "testing-selective"  # `train.py selective --out METRICS/testing-selective` on Testing


def testing_verdict(folder: str | Path) -> dict[str, Any] | None:
    """The release's verdict figures on Testing, as ``train.py selective`` measured them."""
    saved = load_json(Path(folder) / TESTING_SELECTIVE, "selective.json")
    return saved.get("verdict") if saved else None


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


COLLECTION_NAMES = {"sartaj": "SARTAJ", "figshare": "figshare", "br35h": "Br35H"}


def trust_markdown(metrics: dict[str, Any], crossval: dict[str, Any] | None,
                   testing_verdict: dict[str, float] | None = None) -> str:
    """One table: Testing (full, de-duplicated) beside the held-out collections (a model of the same recipe
    trained without that collection, judged on all its images); with the verdicts' figures where saved
    (``{"ok_share": ..., "ok_accuracy": ...}``)."""
    columns = [("Testing (full)", metrics["full"], testing_verdict),
               ("Testing (de-duplicated)", metrics.get("dedup"), None)]
    for name, block in ((crossval or {}).get("heldout") or {}).items():
        columns.append((f"held-out {COLLECTION_NAMES.get(name, name)}", block["metrics"], block.get("verdict")))
    columns = [c for c in columns if c[1]]
    rows = ["| | " + " | ".join(title for title, _, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows.append("| images | " + " | ".join(f"{m['n']:,}" for _, m, _ in columns) + " |")
    rows.append("| accuracy | " + " | ".join(f"{_pct(m['accuracy'])} {_ci(m['accuracy_ci95'])}" for _, m, _ in columns) + " |")
    for label in columns[0][1]["labels"]:
        cells = [_pct(m["per_class"][label]["recall"]) if m["per_class"].get(label, {}).get("support") else "—"
                 for _, m, _ in columns]
        rows.append(f"| recall {label} | " + " | ".join(cells) + " |")
    if any(v for _, _, v in columns):
        rows.append("| answered \"ok\" (accuracy among them) | " + " | ".join(
            f"{_pct(v['ok_share'])} ({_pct(v['ok_accuracy'])})" if v else "—" for _, _, v in columns) + " |")
    return "\n".join(rows)


def localisation_summary(result: dict[str, Any] | None, method: str = "gradcam") -> str:
    """One sentence on whether the heatmaps land on the tumour (the localisation yardstick on Testing)."""
    if not result or method not in result.get("methods", {}):
        return "_No localisation measurement saved for this model._"
    a = result["methods"][method]["all"]
    grid = "×".join(str(v) for v in result.get("cam_grid") or [])
    return (f"Heatmaps on the tumour ({result['images']} figshare Testing slices with the radiologists' masks, "
            f"Grad-CAM of the true class, {grid} cells): the peak falls inside the tumour (widened by "
            f"{result['widen_px']} px) on **{_pct(a['pointing_game'])}** of the slices, and "
            f"{_pct(a['energy_inside'])} of the heat lies inside masks that cover {_pct(a['mask_share'])} of the "
            f"input (**{a['energy_ratio']:.1f}×** a uniform map).")
