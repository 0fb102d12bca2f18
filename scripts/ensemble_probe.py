"""What an ensemble of recorded DU runs would answer: their class probabilities averaged slice by slice.

    python scripts/ensemble_probe.py assets/yardsticks/r22p-du/lgg-slices.csv \
        assets/yardsticks/r22k-du/lgg-slices.csv [more CSVs] [--thresholds 0.9 0.95]

Each CSV is a ``train.py lgg-eval`` answer table (``lgg-slices.csv``) of the same slices. The ensemble's answer is
the class of the mean probabilities; a slice counts as answered "ok" at a threshold when every member's screening
passed it (its verdict "ok", or "uncertain" only for want of confidence) and the mean top probability reaches the
threshold. The thresholds are fixed, never fitted on these slices (a release fits its own on validation). Issue 27
lists distillation of an ensemble among the candidates; this says what the ensemble itself is worth before any
distillation is trained.
Prints figures, each member's and the ensemble's; decides nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from brainmri.data.lgg import GLIOMA, NO_TUMOUR, SEQUENCES
from brainmri.evaluation.lgg import read_rows

# the verdict's codes of a slice the screening let through: none ("ok") or "unsure" (held back by the threshold
# alone); every other code is a screening check's (not_mri, looks_flair ...), as scripts/record_yardstick.py reads them
SCREENED_IN = {"", "unsure"}


def answers(rows: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(classes, probabilities N x C, passed screening N) of one answer table, in its row order."""
    classes = [key[2:] for key in rows[0] if key.startswith("p_")]
    probabilities = np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows])
    passed = np.array([row["code"] in SCREENED_IN for row in rows])
    return classes, probabilities, passed


def ensemble(tables: list[list[dict]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The members' mean probabilities and where every member's screening passed; the tables must list the same
    slices in the same order."""
    first = [row["path"] for row in tables[0]]
    for table in tables[1:]:
        if [row["path"] for row in table] != first:
            raise ValueError("the answer tables do not list the same slices in the same order")
    members = [answers(table) for table in tables]
    classes = members[0][0]
    if any(m[0] != classes for m in members):
        raise ValueError("the answer tables do not share their classes")
    return classes, np.mean([m[1] for m in members], axis=0), np.all([m[2] for m in members], axis=0)


def figures(rows: list[dict], classes: list[str], probabilities: np.ndarray, passed: np.ndarray, thresholds) -> dict:
    """Glioma recall per sequence, tumour-free slices answered "no tumour", all slices right, and per threshold
    the share answered "ok" and the share right among them."""
    predicted = np.array(classes)[probabilities.argmax(1)]
    labels = np.array([row["label"] for row in rows])
    sequences = np.array([row["sequence"] for row in rows])
    right = predicted == labels

    def share(chosen):
        return chosen.mean() if len(chosen) else float("nan")

    out = {f"glioma {s}": share(right[(labels == GLIOMA) & (sequences == s)]) for s in SEQUENCES}
    out["tumour-free"] = share(right[labels == NO_TUMOUR])
    out["all"] = share(right)
    for t in thresholds:
        ok = passed & (probabilities.max(1) >= t)
        out[f"ok at {t:g}"] = share(ok)
        out[f"right among ok at {t:g}"] = share(right[ok])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", help="lgg-slices.csv of each member")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.95])
    args = parser.parse_args(argv)
    tables = [read_rows(path) for path in args.tables]
    results = {path: figures(table, *answers(table), args.thresholds) for path, table in zip(args.tables, tables)}
    if len(tables) > 1:
        results["ensemble (mean probabilities)"] = figures(tables[0], *ensemble(tables), args.thresholds)
    keys = list(next(iter(results.values())))
    print("| answers | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, values in results.items():
        print(f"| {name} | " + " | ".join(f"{100 * values[k]:.1f} %" for k in keys) + " |")


if __name__ == "__main__":
    main()
