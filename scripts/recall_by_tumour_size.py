"""Glioma recall on TCGA-LGG by how much of the slice the tumour covers, from per-slice answers.

    python scripts/recall_by_tumour_size.py assets/yardsticks/r22k-du/lgg-slices.csv [more CSVs] \
        --lgg ../shared/data/tcga-lgg [--sequence flair] [--edges 1 2 4 8]

Each CSV is a ``train.py lgg-eval`` answer table (``lgg-slices.csv``); the tumour's share of its slice comes from
the collection's ``slices.csv`` (``mask_pixels``, the FLAIR abnormality a reader traced). The label rule calls a
slice glioma from 1 % of the slice up, so the first bin starts there. Shows whether a run's misses are the small
lesions at a tumour's edge or whole tumours. Prints figures; decides nothing.
"""

from __future__ import annotations

import argparse

from brainmri.data.lgg import GLIOMA, SEQUENCES, SLICE_PIXELS, read_slices
from brainmri.evaluation.lgg import read_rows


def tumour_shares(lgg_root) -> dict[str, float]:
    """``<patient>/NNN`` -> the tumour's share of that slice (0-1)."""
    return {f"{s.patient}/{s.number:03d}": s.mask_pixels / SLICE_PIXELS for s in read_slices(lgg_root)}


def recall_by_size(
    rows: list[dict], shares: dict[str, float], sequence: str, edges: list[float]
) -> list[tuple[int, int]]:
    """(found, slices) of the glioma slices of ``sequence`` per bin ``[edges[i], edges[i+1])``, the last open."""
    cells = [[0, 0] for _ in edges]
    for row in rows:
        if row["label"] != GLIOMA or row["sequence"] != sequence:
            continue
        key = row["path"].rsplit("_", 1)[0]  # <patient>/NNN_<sequence>.jpg -> <patient>/NNN
        if key not in shares:
            raise KeyError(f"{row['path']} is not in the TCGA-LGG slice table")
        bins = [i for i, edge in enumerate(edges) if shares[key] >= edge]
        if not bins:
            continue  # under the first edge: not counted
        cell = cells[bins[-1]]
        cell[0] += row["predicted"] == GLIOMA
        cell[1] += 1
    return [tuple(cell) for cell in cells]


def _share(cell: tuple[int, int]) -> str:
    found, total = cell
    return f"{100 * found / total:.1f} % of {total}" if total else "—"


def _bin_names(edges_percent: list[float]) -> list[str]:
    names = [f"{a:g}–{b:g} %" for a, b in zip(edges_percent, edges_percent[1:])]
    return names + [f"≥ {edges_percent[-1]:g} %"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", nargs="+")
    parser.add_argument("--lgg", required=True, help="the TCGA-LGG folder (its slices.csv)")
    parser.add_argument("--sequence", choices=SEQUENCES, default="flair")
    parser.add_argument(
        "--edges", type=float, nargs="+", default=[1, 2, 4, 8], help="bin edges, % of the slice, increasing"
    )
    args = parser.parse_args()
    if sorted(args.edges) != args.edges or len(set(args.edges)) != len(args.edges):
        parser.error("--edges must increase")
    shares = tumour_shares(args.lgg)
    edges = [e / 100 for e in args.edges]
    names = _bin_names(args.edges)
    print(f"{args.sequence} glioma recall by the tumour's share of the slice")
    print(f"| run | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for path in args.answers:
        cells = recall_by_size(read_rows(path), shares, args.sequence, edges)
        print(f"| {path} | {' | '.join(_share(c) for c in cells)} |")


if __name__ == "__main__":
    main()
