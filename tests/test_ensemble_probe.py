"""scripts/ensemble_probe.py: the members' probabilities averaged slice by slice, on tiny answer tables."""

import csv

import pytest

from brainmri.evaluation.lgg import read_rows
from scripts.ensemble_probe import answers, ensemble, figures

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def _table(path, answers):
    """answers: (sequence, label, p_glioma, p_notumor, verdict, code) rows, as lgg-eval writes them."""
    fields = ["path", "patient", "sequence", "label", "predicted", *(f"p_{c}" for c in CLASSES), "verdict", "code"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for i, (sequence, label, glioma, notumor, verdict, code) in enumerate(answers):
            p = dict(p_glioma=glioma, p_meningioma=0.0, p_notumor=notumor, p_pituitary=0.0)
            predicted = "glioma" if glioma > notumor else "notumor"
            writer.writerow(dict(path=f"P/{i:03d}_{sequence}.jpg", patient="P", sequence=sequence, label=label,
                                 predicted=predicted, verdict=verdict, code=code, **p))  # fmt: skip
    return read_rows(path)


def test_the_ensemble_answers_the_class_of_the_mean_probabilities(tmp_path):
    a = _table(
        tmp_path / "a.csv",
        [
            ("flair", "glioma", 0.99, 0.01, "ok", ""),  # both sure and right
            ("flair", "glioma", 0.40, 0.60, "uncertain", "unsure"),  # a wrong, b right and surer: mean right
            ("t1", "notumor", 0.97, 0.03, "ok", ""),  # a sure and wrong; b screened it out
        ],
    )
    b = _table(
        tmp_path / "b.csv",
        [
            ("flair", "glioma", 0.97, 0.03, "ok", ""),
            ("flair", "glioma", 0.90, 0.10, "ok", ""),
            ("t1", "notumor", 0.99, 0.01, "not_mri", "unfamiliar"),
        ],
    )
    classes, probabilities, passed = ensemble([a, b])
    assert classes == CLASSES
    assert probabilities[1].tolist() == pytest.approx([0.65, 0.0, 0.35, 0.0])
    assert passed.tolist() == [True, True, False]
    out = figures(a, classes, probabilities, passed, [0.9])
    assert out["glioma flair"] == 1.0 and out["tumour-free"] == 0.0 and out["all"] == pytest.approx(2 / 3)
    assert out["ok at 0.9"] == pytest.approx(1 / 3)  # the third slice is sure (0.98) but screened out by b
    assert out["right among ok at 0.9"] == 1.0
    alone = figures(a, *answers(a), [0.9])
    assert alone["glioma flair"] == 0.5 and alone["ok at 0.9"] == pytest.approx(2 / 3)
    assert alone["right among ok at 0.9"] == 0.5


def test_tables_of_other_slices_are_refused(tmp_path):
    a = _table(tmp_path / "a.csv", [("flair", "glioma", 0.9, 0.1, "ok", "")])
    b = _table(tmp_path / "b.csv", [("t1", "glioma", 0.9, 0.1, "ok", "")])
    with pytest.raises(ValueError, match="same slices"):
        ensemble([a, b])
