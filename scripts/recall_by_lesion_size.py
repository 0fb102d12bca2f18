"""Glioma recall on TCGA-LGG by the lesion's share of the slice, per sequence, from judged runs' per-slice answers.

    python scripts/recall_by_lesion_size.py assets/yardsticks/r22d-du/lgg-slices.csv [more CSVs] \
        [--lgg ../shared/data/tcga-lgg]

Each CSV is a ``train.py lgg-eval`` answer table (``lgg-slices.csv``); the lesion's share is the slice's mask pixels
(``slices.csv``, :func:`brainmri.data.lgg.read_slices`) over the slice's 256 x 256. Prints figures; decides nothing.
"""

from __future__ import annotations

import argparse

from brainmri.data.lgg import GLIOMA, SEQUENCES, SLICE_PIXELS, read_slices
from brainmri.evaluation.lgg import read_rows

BINS = ((0.01, 0.02), (0.02, 0.04), (0.04, 0.08), (0.08, 1.0))  # the label rule counts a glioma from 1 %


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", nargs="+")
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    args = parser.parse_args()
    share = {s.image_path("")[: -len("_.jpg")]: s.mask_pixels / SLICE_PIXELS for s in read_slices(args.lgg)}
    for path in args.answers:
        rows = [r for r in read_rows(path) if r["label"] == GLIOMA]
        print(f"{path}\n| lesion's share | " + " | ".join(SEQUENCES) + " |\n" + "|---" * (len(SEQUENCES) + 1) + "|")
        for low, high in BINS:
            cells = []
            for sequence in SEQUENCES:
                cell = [
                    r for r in rows if r["sequence"] == sequence and low < share[r["path"].rsplit("_", 1)[0]] <= high
                ]
                right = sum(r["predicted"] == GLIOMA for r in cell)
                cells.append(f"{100 * right / len(cell):.0f} % of {len(cell)}" if cell else "—")
            print(f"| {100 * low:g}–{100 * high:g} % | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
