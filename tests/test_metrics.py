"""metrics.json's numbers are scikit-learn's: per class, confusion matrices (counts and row-normalised)."""

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from brainmri.evaluation.metrics import compute_metrics
from helpers import CLASSES


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
    from sklearn.metrics import accuracy_score

    from brainmri.evaluation.metrics import bootstrap_ci

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.9, truth, (truth + 1) % 4)
    low, high = bootstrap_ci(truth, predicted, accuracy_score)
    assert low < accuracy_score(truth, predicted) < high and high - low < 0.1
    assert bootstrap_ci(truth, truth, accuracy_score) == [1.0, 1.0]
    assert bootstrap_ci(truth, predicted, accuracy_score) == [low, high]  # seeded: the same interval again
