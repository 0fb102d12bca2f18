"""Glioma recall on TCGA-LGG split into the patients a reference run misses and the rest, from per-slice answers.

    python scripts/recall_by_patient.py assets/yardsticks/r22f-du/lgg-slices.csv \
        assets/yardsticks/r22i-du/lgg-slices.csv [more CSVs] [--reference CSV] [--at-most 0.4]

Each CSV is a ``train.py lgg-eval`` answer table (``lgg-slices.csv``). A patient is "missed" when the reference run
(default: the first CSV) finds at most ``--at-most`` of its tumour slices of ``--sequence`` (default FLAIR); every
run is then counted on the missed patients' slices and on the others'. Docs/record/decisions.md (session p, 04:05)
found DU's FLAIR misses by patient this way. Prints figures; decides nothing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from brainmri.data.lgg import GLIOMA, SEQUENCES
from brainmri.evaluation.lgg import read_rows


def recall_by_patient(rows: list[dict], sequence: str) -> dict[str, tuple[int, int]]:
    """patient -> (tumour slices of ``sequence`` called glioma, tumour slices of ``sequence``)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        if row["label"] == GLIOMA and row["sequence"] == sequence:
            counts[row["patient"]][0] += row["predicted"] == GLIOMA
            counts[row["patient"]][1] += 1
    return {patient: (found, total) for patient, (found, total) in counts.items()}


def missed_patients(rows: list[dict], sequence: str, at_most: float) -> set[str]:
    return {p for p, (found, total) in recall_by_patient(rows, sequence).items() if found <= at_most * total}


def split_recall(rows: list[dict], sequence: str, missed: set[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((found, slices) on the missed patients, (found, slices) on the others)."""
    inside, outside = [0, 0], [0, 0]
    for patient, (found, total) in recall_by_patient(rows, sequence).items():
        cell = inside if patient in missed else outside
        cell[0] += found
        cell[1] += total
    return tuple(inside), tuple(outside)


def _share(cell: tuple[int, int]) -> str:
    found, total = cell
    return f"{100 * found / total:.1f} % of {total}" if total else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("answers", nargs="+")
    parser.add_argument("--reference", default=None, help="the run whose misses define the group (default: the first)")
    parser.add_argument("--at-most", type=float, default=0.4, help="a patient is missed at or under this recall")
    parser.add_argument("--sequence", choices=SEQUENCES, default="flair")
    args = parser.parse_args()
    reference = read_rows(args.reference or args.answers[0])
    missed = missed_patients(reference, args.sequence, args.at_most)
    patients = recall_by_patient(reference, args.sequence)
    print(
        f"{len(missed)} of {len(patients)} patients missed by {args.reference or args.answers[0]} "
        f"({args.sequence} recall <= {100 * args.at_most:g} %)\n"
        f"| run | missed patients | the others | all |\n|---|---|---|---|"
    )
    for path in args.answers:
        inside, outside = split_recall(read_rows(path), args.sequence, missed)
        every = (inside[0] + outside[0], inside[1] + outside[1])
        print(f"| {path} | {_share(inside)} | {_share(outside)} | {_share(every)} |")


if __name__ == "__main__":
    main()
