"""The model shipped in assets/model: its record is intact and it gets real slices right."""

import json
from pathlib import Path

import pytest

from brainmri import Predictor
from brainmri.inference.release import read_config, sha256_file

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "assets" / "model"
METRICS = ROOT / "assets" / "metrics"
EXAMPLES = ROOT / "assets" / "examples"
LABELS = ["glioma", "meningioma", "notumor", "pituitary"]


@pytest.fixture(scope="module")
def predictor(bundled):
    assert bundled.labels == LABELS
    return bundled


def test_config_labels_temperature_and_sha256():
    config = read_config(MODEL)
    assert config["label_names"] == LABELS and config["num_classes"] == 4
    assert config["architecture"].startswith("convnext")
    assert 0.2 < config["temperature"] < 5
    assert config["weights_sha256"] == sha256_file(MODEL / "model.safetensors")
    assert config["preprocessing"]["content_crop"] is True
    assert config["screening"]["feature_threshold"] > 0
    assert sum(f.stat().st_size for f in MODEL.iterdir()) < 60 * 2**20
    card = (MODEL / "README.md").read_text()
    assert card.startswith("---")
    # one licence for the weights: the card's front matter and timm's pretrained_cfg (read by timm and the Hub)
    assert card.split("\n")[1] == f"license: {config['pretrained_cfg']['license']}"


def test_classifies_one_real_slice_of_each_class(predictor):
    for label in LABELS:
        example = next(EXAMPLES.glob(f"{label}-*"))
        explanation = predictor.explain(example)
        assert explanation.label == label, (example.name, explanation.probabilities)
        assert explanation.verdict.status == "ok", explanation.verdict.reason


def test_saved_evaluation_matches_the_shipped_weights():
    metrics = json.loads((METRICS / "metrics.json").read_text())
    assert metrics["meta"]["weights_sha256"] == read_config(MODEL)["weights_sha256"]
    assert metrics["full"]["n"] == 1311 and metrics["dedup"]["n"] < 1311
    for name in ("confusion_full.png", "roc_full.png", "reliability_full.png", "curves.png", "gradcam_gallery.png"):
        assert (METRICS / name).is_file(), name


def test_ships_a_checked_onnx_export_that_agrees_with_torch(predictor):
    pytest.importorskip("onnxruntime")
    config = read_config(MODEL)
    assert config["onnx"]["weights_sha256"] == config["weights_sha256"]
    assert config["onnx"]["check"]["images"] == 64 and config["onnx"]["check"]["max_abs_logit_diff"] <= 1e-4
    assert predictor.backend.name == "onnxruntime"
    plain = Predictor.from_pretrained(MODEL, backend="torch")
    examples = sorted(EXAMPLES.iterdir())
    for fast, slow in zip(predictor.predict_batch(examples), plain.predict_batch(examples)):
        assert max(abs(fast[k] - slow[k]) for k in LABELS) < 1e-4


def test_ships_its_held_out_localisation_and_verdict_record():
    crossval = json.loads((METRICS / "crossval.json").read_text())
    sartaj = crossval["heldout"]["sartaj"]
    assert sartaj["recipe"]["holdout"] == "sartaj" and sartaj["metrics"]["n"] == 2579
    assert sartaj["model_args"].get("output_stride") == read_config(MODEL)["model_args"].get("output_stride")
    localisation = json.loads((METRICS / "localisation.json").read_text())
    assert localisation["images"] == 619 and min(localisation["cam_grid"]) >= 7
    verdict = json.loads((METRICS / "testing-selective" / "selective.json").read_text())["verdict"]
    assert (
        verdict["n"] == 1311
        and verdict["settings"]["min_confidence"] == read_config(MODEL)["screening"]["min_confidence"]
    )
