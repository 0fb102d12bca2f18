"""scripts/recall_by_tumour_size.py: glioma recall binned by the tumour's share of the slice, on tiny tables."""

import csv

import pytest

from brainmri.evaluation.lgg import read_rows
from scripts.recall_by_tumour_size import recall_by_size, tumour_shares

# slice -> mask pixels of a 256 x 256 slice: 0.5 %, 1.5 %, 3 %, 10 %
MASKS = {1: 328, 2: 983, 3: 1966, 4: 6554}


def _slice_table(root):
    with open(root / "slices.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "site", "slice", "slices_in_scan", "sequences", "mask_pixels"])
        for number, pixels in MASKS.items():
            writer.writerow(["TCGA_DU_1", "DU", number, 4, "flair;t1", pixels])
    return root


def _answers(path, answers):
    """answers: (slice number, sequence, label, predicted)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "patient", "sequence", "label", "predicted"])
        writer.writeheader()
        for number, sequence, label, predicted in answers:
            writer.writerow(
                dict(
                    path=f"TCGA_DU_1/{number:03d}_{sequence}.jpg",
                    patient="TCGA_DU_1",
                    sequence=sequence,
                    label=label,
                    predicted=predicted,
                )
            )
    return read_rows(path)


def test_each_tumour_slice_lands_in_the_bin_of_its_mask_share(tmp_path):
    shares = tumour_shares(_slice_table(tmp_path))
    assert shares["TCGA_DU_1/003"] == pytest.approx(0.03, abs=1e-4)
    rows = _answers(
        tmp_path / "a.csv",
        [
            (1, "flair", "notumor", "notumor"),  # tumour-free label: never counted
            (2, "flair", "glioma", "notumor"),  # 1.5 %: first bin, missed
            (3, "flair", "glioma", "glioma"),  # 3 %: second bin, found
            (4, "flair", "glioma", "meningioma"),  # 10 %: last, open bin, missed
            (4, "t1", "glioma", "glioma"),  # another sequence
        ],
    )
    assert recall_by_size(rows, shares, "flair", [0.01, 0.02, 0.04, 0.08]) == [(0, 1), (1, 1), (0, 0), (0, 1)]
    assert recall_by_size(rows, shares, "t1", [0.01, 0.05]) == [(0, 0), (1, 1)]
    assert recall_by_size(rows, shares, "flair", [0.02]) == [(1, 2)]  # the 1.5 % slice falls under the first edge


def test_an_answer_for_a_slice_the_table_lacks_is_an_error(tmp_path):
    shares = tumour_shares(_slice_table(tmp_path))
    rows = _answers(tmp_path / "a.csv", [(9, "flair", "glioma", "glioma")])
    with pytest.raises(KeyError, match="009_flair.jpg"):
        recall_by_size(rows, shares, "flair", [0.01])
