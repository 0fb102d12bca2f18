"""Glioma recall on TCGA-LGG by the lesion's share of the slice, per sequence, from judged runs' per-slice answers.

    python scripts/recall_by_lesion_size.py assets/yardsticks/r22d-du/lgg-slices.csv [more CSVs] \
        [--lgg ../shared/data/tcga-lgg] [--by level]

Each CSV is a ``train.py lgg-eval`` answer table (``lgg-slices.csv``); the lesion's share is the slice's mask pixels
(``slices.csv``, :func:`brainmri.data.lgg.read_slices`) over the slice's 256 x 256. ``--by level`` tabulates by the
slice's level in its scan instead (0 the first slice, 1 the last), all sequences together: glioma recall per lesion
share, and the tumour-free slices answered "no tumour". Prints figures; decides nothing.
"""

from __future__ import annotations

import argparse

from brainmri.data.lgg import GLIOMA, NO_TUMOUR, SEQUENCES, SLICE_PIXELS, read_slices
from brainmri.evaluation.lgg import read_rows

BINS = ((0.01, 0.02), (0.02, 0.04), (0.04, 0.08), (0.08, 1.0))  # the label rule counts a glioma from 1 %
LEVELS = ((0.0, 0.4), (0.4, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 1.0))


def slice_facts(lgg_root) -> dict[str, tuple[float, float]]:
    """``patient/NNN`` -> (the lesion's share of the slice, the slice's level in its scan, 0 to 1)."""
    return {
        s.image_path("")[: -len("_.jpg")]: (s.mask_pixels / SLICE_PIXELS, (s.number - 1) / max(s.slices_in_scan - 1, 1))
        for s in read_slices(lgg_root)
    }


def _within(value: float, low: float, high: float) -> bool:
    return low < value <= high or (low == 0.0 and value == 0.0)


def _cell(rows, wanted: str) -> str:
    right = sum(r["predicted"] == wanted for r in rows)
    return f"{100 * right / len(rows):.0f} % of {len(rows)}" if rows else "—"


def by_sequence(rows, facts) -> list[str]:
    """Glioma recall, lesion share x sequence, as markdown rows."""
    gliomas = [r for r in rows if r["label"] == GLIOMA]
    lines = ["| lesion's share | " + " | ".join(SEQUENCES) + " |", "|---" * (len(SEQUENCES) + 1) + "|"]
    for low, high in BINS:
        cells = [
            _cell([r for r in gliomas if r["sequence"] == q and _within(facts[_key(r)][0], low, high)], GLIOMA)
            for q in SEQUENCES
        ]
        lines.append(f"| {100 * low:g}–{100 * high:g} % | " + " | ".join(cells) + " |")
    return lines


def by_level(rows, facts) -> list[str]:
    """Glioma recall per lesion share and tumour-free slices answered "no tumour", by the slice's level."""
    head = [f"glioma {100 * low:g}–{100 * high:g} %" for low, high in BINS] + ['tumour-free → "no tumour"']
    lines = ["| level in the scan | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for low, high in LEVELS:
        here = [r for r in rows if _within(facts[_key(r)][1], low, high)]
        cells = [
            _cell([r for r in here if r["label"] == GLIOMA and _within(facts[_key(r)][0], s_low, s_high)], GLIOMA)
            for s_low, s_high in BINS
        ]
        cells.append(_cell([r for r in here if r["label"] == NO_TUMOUR], NO_TUMOUR))
        lines.append(f"| {low:g}–{high:g} | " + " | ".join(cells) + " |")
    return lines


def _key(row) -> str:
    return row["path"].rsplit("_", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", nargs="+")
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    parser.add_argument("--by", choices=["sequence", "level"], default="sequence")
    args = parser.parse_args()
    facts = slice_facts(args.lgg)
    table = by_level if args.by == "level" else by_sequence
    for path in args.answers:
        print(path, *table(read_rows(path), facts), sep="\n")


if __name__ == "__main__":
    main()
