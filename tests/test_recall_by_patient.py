"""scripts/recall_by_patient.py: DU's FLAIR misses counted by patient, on a tiny answer table."""

import csv

from brainmri.evaluation.lgg import read_rows
from scripts.recall_by_patient import missed_patients, split_recall


def _table(path, answers):
    """answers: (patient, sequence, label, predicted) rows, written as lgg-eval writes them."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "patient", "sequence", "label", "predicted"])
        writer.writeheader()
        for i, (patient, sequence, label, predicted) in enumerate(answers):
            writer.writerow(
                dict(
                    path=f"{patient}/{i:03d}_{sequence}.jpg",
                    patient=patient,
                    sequence=sequence,
                    label=label,
                    predicted=predicted,
                )
            )
    return read_rows(path)


def test_a_patient_is_missed_by_its_flair_tumour_slices_alone(tmp_path):
    rows = _table(
        tmp_path / "a.csv",
        [
            ("P1", "flair", "glioma", "notumor"),
            ("P1", "flair", "glioma", "glioma"),
            ("P1", "flair", "glioma", "notumor"),
            ("P1", "t1c", "glioma", "glioma"),  # another sequence does not count
            ("P2", "flair", "glioma", "glioma"),
            ("P2", "flair", "glioma", "meningioma"),
            ("P3", "flair", "notumor", "notumor"),  # tumour-free slices do not make a patient
        ],
    )
    assert missed_patients(rows, "flair", at_most=0.4) == {"P1"}
    assert missed_patients(rows, "flair", at_most=0.5) == {"P1", "P2"}
    assert split_recall(rows, "flair", {"P1"}) == ((1, 3), (1, 2))
    assert split_recall(rows, "t1c", {"P1"}) == ((1, 1), (0, 0))
