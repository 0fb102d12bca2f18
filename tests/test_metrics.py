"""metrics.json's numbers are scikit-learn's: per class, confusion matrices (counts and row-normalised)."""

import json

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

import train as cli
from brainmri.evaluation.metrics import compute_metrics
from helpers import CLASSES, measure


def test_per_class_and_confusion_come_from_scikit_learn():
    rng = np.random.default_rng(0)
    y_true = np.array([0] * 10 + [1] * 8 + [3] * 6)  # no "notumor" at all: a folder lacking a class
    probs = rng.dirichlet(np.ones(4), len(y_true))
    probs[np.arange(len(y_true))[::2], y_true[::2]] += 2.0  # every other answer right
    probs /= probs.sum(1, keepdims=True)
    m = compute_metrics(y_true, probs, CLASSES)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, probs.argmax(1), labels=range(4), zero_division=0
    )
    for i, label in enumerate(CLASSES):
        assert m["per_class"][label] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )
    normalized = np.array(m["confusion_matrix_normalized"])
    counts = np.array(m["confusion_matrix"])
    np.testing.assert_allclose(normalized[[0, 1, 3]].sum(1), 1.0)
    assert normalized[2].sum() == 0 and counts[2].sum() == 0  # the absent class: an empty row, not NaN
    np.testing.assert_allclose(normalized[0], counts[0] / counts[0].sum())
    assert m["classes_present"] == ["glioma", "meningioma", "pituitary"] and m["roc_auc"]["notumor"] is None


def test_bootstrap_interval_holds_the_estimate_and_is_degenerate_when_every_resample_agrees():
    from brainmri.evaluation.metrics import accuracy_of, bootstrap_ci

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.9, truth, (truth + 1) % 4)
    low, high = bootstrap_ci(truth, predicted, accuracy_of, vectorized=True)
    assert low < accuracy_of(truth, predicted) < high and high - low < 0.1
    assert bootstrap_ci(truth, truth, accuracy_of, vectorized=True) == [1.0, 1.0]
    assert bootstrap_ci(truth, predicted, accuracy_of, vectorized=True) == [low, high]  # seeded: the same again


def test_the_vectorised_statistics_are_scikit_learns_on_every_resample():
    """The intervals score every resample at once; each score is scikit-learn's, so the intervals are the same."""
    from sklearn.metrics import accuracy_score, f1_score

    from brainmri.evaluation.metrics import accuracy_of, bootstrap_ci, macro_f1_of

    rng = np.random.default_rng(2)
    truth = np.array([0] * 9 + [1] * 2 + [3] * 13)  # a rare class, often missing from a resample; no class 2
    said = np.where(rng.random(len(truth)) < 0.7, truth, rng.integers(0, 4, len(truth)))
    present = [0, 1, 3]
    rows = rng.integers(0, len(truth), (100, len(truth)))
    f1 = macro_f1_of(present)(truth[rows], said[rows])
    for k, row in enumerate(rows):
        assert accuracy_of(truth[row], said[row]) == accuracy_score(truth[row], said[row])
        assert f1[k] == pytest.approx(f1_score(truth[row], said[row], labels=present, average="macro", zero_division=0))

    def sklearn_f1(t, p):
        return f1_score(t, p, labels=present, average="macro", zero_division=0)

    slow = bootstrap_ci(truth, said, sklearn_f1, n=100)
    assert bootstrap_ci(truth, said, macro_f1_of(present), n=100, vectorized=True) == pytest.approx(slow, abs=1e-12)


@pytest.mark.slow  # trains, exports or serves
def test_evaluate_on_a_folder_lacking_classes(run, dataset, cache_dir, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    for name in ("glioma", "notumor"):
        shutil.copytree(dataset / "Testing" / name, partial / name)
    assert (
        cli.main(
            measure(
                "evaluate", run / "release", partial, tmp_path / "ev", "--cache-dir", str(cache_dir), "--no-gallery"
            )
        )
        == 0
    )
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())["full"]
    assert m["classes_present"] == ["glioma", "notumor"] and m["roc_auc"]["meningioma"] is None
    assert m["per_class"]["meningioma"]["support"] == 0
