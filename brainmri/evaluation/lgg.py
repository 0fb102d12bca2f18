"""The new-source yardstick: a release judged on TCGA-LGG slices, per sequence, with the page's verdict.

Two uses (docs/guide/training.md): *leave-LGG-out* (a model and verdict that never saw TCGA-LGG, judged on every
labelled slice: what a scan from elsewhere gets) and *leave-one-institution-out* (trained with the other
institutions' patients, judged on the held-out one's). For every labelled slice the release answers as the
page does (:meth:`Predictor.screen_batch`: calibrated probabilities and the verdict with the release's own
checks), so "ok answers right" is the figure a user meets.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from brainmri.data.lgg import GLIOMA, NO_TUMOUR, SEQUENCES, LggSet


def _share(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _block(labels, predicted, ok, names: list[str]) -> dict[str, Any]:
    """Accuracy, the verdict's "ok" share and accuracy among "ok", and how the answers spread over the classes."""
    right = predicted == labels
    return {
        "n": int(len(labels)),
        "accuracy": _share(right),
        "ok_share": _share(ok),
        "ok_accuracy": _share(right[ok]),
        "answers": {name: int((predicted == i).sum()) for i, name in enumerate(names)},
    }


def lgg_report(predictor, lgg: LggSet, *, masks=None, batch_size: int = 256) -> tuple[dict[str, Any], list[dict]]:
    """The yardstick's figures and one row per image (for a CSV); ``masks``: the slices' fitted masks
    (:func:`brainmri.data.lgg.load_lgg_masks`) for the pointing game on the glioma slices."""
    names = predictor.labels
    files = [lgg.images.root / p for p in lgg.images.paths]
    labels = lgg.images.labels
    predicted = np.zeros(len(lgg), dtype=np.int64)
    ok = np.zeros(len(lgg), dtype=bool)
    rows = []
    for start in range(0, len(files), batch_size):
        for offset, result in enumerate(predictor.screen_batch(files[start : start + batch_size])):
            i = start + offset
            if isinstance(result, Exception):
                raise result  # load_lgg read every file already: a failure here is a bug, not bad input
            probabilities, verdict = result
            predicted[i] = names.index(max(probabilities, key=probabilities.get))
            ok[i] = verdict.ok
            rows.append(
                {
                    "path": lgg.images.paths[i],
                    "patient": lgg.patient[i],
                    "site": lgg.site[i],
                    "sequence": lgg.sequence[i],
                    "label": names[labels[i]],
                    "predicted": names[predicted[i]],
                    **{f"p_{n}": round(p, 5) for n, p in probabilities.items()},
                    "verdict": verdict.status,
                    "code": verdict.code,
                }
            )
    report: dict[str, Any] = {
        "n": int(len(lgg)),
        "sites": sorted(set(lgg.site.tolist())),
        "patients": int(len(set(lgg.patient.tolist()))),
        "all": _block(labels, predicted, ok, names),
        "by_sequence": {},
    }
    for sequence in SEQUENCES:
        here = lgg.sequence == sequence
        report["by_sequence"][sequence] = {
            label: _block(labels[index], predicted[index], ok[index], names)
            for label in (GLIOMA, NO_TUMOUR)
            if len(index := np.flatnonzero(here & (labels == names.index(label))))
        }
    for label in (GLIOMA, NO_TUMOUR):
        index = np.flatnonzero(labels == names.index(label))
        report[label] = _block(labels[index], predicted[index], ok[index], names)
    if masks is not None:
        from brainmri.evaluation.localisation import localisation

        glioma = np.flatnonzero(labels == names.index(GLIOMA))
        found = {}  # one Grad-CAM pass per sequence; the whole is their slice-weighted mean
        for sequence in SEQUENCES:
            index = glioma[lgg.sequence[glioma] == sequence]
            block = (
                localisation(
                    predictor, lgg.images.images[index], masks.masks[index], labels[index], methods=("gradcam",)
                )["methods"]["gradcam"]["all"]
                if len(index)
                else {"n": 0}
            )
            if block["n"]:
                found[sequence] = block
        counted = sum(b["n"] for b in found.values())
        report["pointing_game_glioma"] = (
            sum(b["pointing_game"] * b["n"] for b in found.values()) / counted if counted else None
        )
        report["pointing_by_sequence"] = {sequence: b["pointing_game"] for sequence, b in found.items()}
    return report, rows


def write_rows(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path"])
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The per-slice answers :func:`write_rows` wrote (``lgg-slices.csv``), as strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def lgg_markdown(report: dict[str, Any]) -> str:
    """One table: per sequence, glioma recall and tumour-free slices answered "no tumour", each with the
    verdict's "ok" share and the accuracy among "ok"."""

    def pct(x):
        return "—" if x is None else f"{100 * x:.1f} %"

    lines = [
        f"TCGA-LGG, sites {', '.join(report['sites'])}: {report['patients']} patients, {report['n']} slices",
        "",
        "| sequence | slices | right | answered ok | right among ok |",
        "|---|---|---|---|---|",
    ]
    for sequence, blocks in report["by_sequence"].items():
        for label, b in blocks.items():
            lines.append(
                f"| {sequence}, {label} | {b['n']} | {pct(b['accuracy'])} | {pct(b['ok_share'])} | "
                f"{pct(b['ok_accuracy'])} |"
            )
    b = report["all"]
    lines.append(f"| all | {b['n']} | {pct(b['accuracy'])} | {pct(b['ok_share'])} | {pct(b['ok_accuracy'])} |")
    if "pointing_game_glioma" in report:
        lines += [
            "",
            f"Grad-CAM pointing game on the glioma slices: {pct(report['pointing_game_glioma'])} ("
            + ", ".join(f"{s} {pct(v)}" for s, v in report["pointing_by_sequence"].items())
            + ")",
        ]
    return "\n".join(lines)
