"""Selective prediction: risk-coverage, AURC and the signals, on their own and through the CLI."""

import json

import numpy as np
import pytest
import torch

import train as cli
from brainmri.evaluation.selective import accuracy_at_threshold, risk_coverage
from helpers import measure


def test_risk_coverage_of_a_perfect_and_a_useless_signal():
    correct = np.array([True] * 8 + [False] * 2)
    perfect = risk_coverage(np.linspace(1, 0, 10), correct)  # the two errors are the least confident
    assert perfect["aurc"] == pytest.approx(perfect["oracle_aurc"])
    assert perfect["at_coverage"]["80"]["accuracy"] == 1.0 and perfect["at_coverage"]["100"]["accuracy"] == 0.8
    worst = risk_coverage(np.linspace(0, 1, 10), correct)  # the errors come first
    assert worst["aurc"] > perfect["aurc"] and worst["at_coverage"]["60"]["accuracy"] == pytest.approx(4 / 6)
    assert worst["risk"][0] == 1.0 and worst["coverage"][-1] == 1.0
    with pytest.raises(ValueError):
        risk_coverage(np.array([]), np.array([], dtype=bool))


def test_accuracy_at_threshold():
    result = accuracy_at_threshold(np.array([0.9, 0.8, 0.3, 0.2]), np.array([True, False, True, False]), 0.5)
    assert result == {"coverage": 0.5, "accuracy": 0.5}
    assert np.isnan(accuracy_at_threshold(np.array([0.1]), np.array([True]), 0.5)["accuracy"])


@pytest.mark.slow  # trains, exports or serves
def test_selective_command_on_testing_and_with_an_ensemble(trained_run, dataset, cache_dir, tmp_path, capsys):
    release = str(trained_run / "release")
    assert (
        cli.main(
            measure(
                "selective",
                release,
                dataset,
                tmp_path,
                "--cache-dir",
                str(cache_dir),
                "--member",
                release,
                "--fit-split",
                str(trained_run / "split.csv"),
                "--stage",
                "1",
                "--mc-passes",
                "4",
            )
        )
        == 0
    )
    report = json.loads((tmp_path / "selective.json").read_text())
    assert report["set"] == "Testing" and report["n"] == 26  # 6 per class + the two planted files
    assert set(report["signals"]) == {
        "max_probability",
        "energy",
        "mahalanobis",
        "tta_agreement",
        "ensemble",
        "mc_dropout",
        "mahalanobis_stage1",
        "mahalanobis_depths",
    }
    for block in report["signals"].values():
        assert len(block["risk"]) == report["n"] and block["aurc"] >= block["oracle_aurc"] - 1e-12
        assert block["at_coverage"]["100"]["accuracy"] == pytest.approx(report["accuracy"])
    # a member equal to the main model agrees with it: the ensemble signal is its top probability
    assert report["signals"]["ensemble"]["aurc"] == pytest.approx(report["signals"]["max_probability"]["aurc"])
    assert (tmp_path / "risk_coverage.png").stat().st_size > 0
    verdict = report["verdict"]  # what the page says, through screen_batch on the files themselves
    assert verdict["n"] == 26 and sum(verdict["counts"].values()) == 26 and verdict["counts"]["unreadable"] == 0
    assert 0 <= verdict["ok_share"] <= 1
    assert "| max_probability |" in capsys.readouterr().out


@pytest.mark.slow  # trains, exports or serves
def test_selective_collection_needs_origins(trained_run, dataset, tmp_path, capsys):
    assert cli.main(measure("selective", trained_run / "release", dataset, tmp_path, "--collection", "sartaj")) == 2
    assert "--origins" in capsys.readouterr().err


def test_threshold_for_accuracy_answers_as_many_as_the_target_allows():
    from brainmri.evaluation.selective import threshold_for_accuracy

    confidence = np.array([0.9, 0.8, 0.8, 0.6, 0.5, 0.4])
    correct = np.array([True, True, False, True, False, False])
    best = threshold_for_accuracy(confidence, correct, 0.75)
    assert best == {"threshold": 0.6, "coverage": 4 / 6, "accuracy": 0.75}
    assert threshold_for_accuracy(confidence, correct, 1.0) == {"threshold": 0.9, "coverage": 1 / 6, "accuracy": 1.0}
    # ties are answered together: 0.8 cannot be split to keep only the right one
    assert threshold_for_accuracy(np.array([0.8, 0.8]), np.array([True, False]), 0.9) is None


@pytest.mark.slow  # trains, exports or serves
def test_mc_dropout_switches_dropout_on_for_its_passes_only(trained_run, dataset, cache_dir):
    from brainmri import Predictor
    from brainmri.data.folders import load_folder
    from brainmri.evaluation.selective import mc_dropout_agreement

    predictor = Predictor.from_pretrained(trained_run / "release", backend="torch")
    images = load_folder(dataset / "Testing", predictor.preprocess, cache_dir=cache_dir).images[:8]
    probs = predictor.probabilities(predictor.logits(images))
    first = mc_dropout_agreement(predictor, images, probs, passes=6, seed=1)
    assert first.shape == (8,) and (first > 0).all() and (first <= 1).all()
    np.testing.assert_allclose(first, mc_dropout_agreement(predictor, images, probs, passes=6, seed=1))  # seeded
    assert not any(m.training for m in predictor.model.modules())  # back in eval mode
    np.testing.assert_allclose(predictor.probabilities(predictor.logits(images)), probs, atol=1e-6)
    assert all(m.p == 0 for m in predictor.model.modules() if isinstance(m, torch.nn.Dropout))  # as loaded
    assert mc_dropout_agreement(predictor, images, probs, rate=0.0) is None  # no dropout: no signal
    assert predictor.config["brainmri"]["drop_rate"] == 0.3  # recorded by training, used by default


def test_the_ok_threshold_holds_on_every_source():
    from brainmri.training.calibration import confidence_for_ok

    rng = np.random.default_rng(0)
    n = 400
    top = rng.uniform(0.5, 1.0, n)
    labels = np.zeros(n, dtype=int)
    groups = np.where(np.arange(n) < 300, "kaggle", "tcga-lgg")
    # kaggle right almost always; the second source right only above 0.95
    right = np.where(groups == "kaggle", rng.uniform(size=n) < 0.99, top > 0.95)
    probs = np.stack([np.where(right, top, 1 - top), np.where(right, 1 - top, top)], axis=1)
    fit = confidence_for_ok(probs, labels, groups, target=0.97, floor=0.9)
    assert fit["by_group"]["tcga-lgg"]["threshold"] > 0.95 >= fit["by_group"]["kaggle"]["threshold"]
    assert fit["min_confidence"] == fit["by_group"]["tcga-lgg"]["threshold"]
    answered = probs.max(1) >= fit["min_confidence"]
    for group in ("kaggle", "tcga-lgg"):
        here = answered & (groups == group)
        assert right[here].mean() >= 0.97
    assert confidence_for_ok(probs, labels, np.full(n, "kaggle"), target=0.5, floor=0.9)["min_confidence"] == 0.9
    never = confidence_for_ok(np.full((4, 2), 0.5) + [[0.1, -0.1]] * 4, np.ones(4, int), np.full(4, "a"), 0.9, 0.9)
    assert never["min_confidence"] == 1.0
