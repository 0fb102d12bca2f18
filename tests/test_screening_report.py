"""The screening: what is not a slice is flagged, and the report counts every input."""

import json
from pathlib import Path

import numpy as np
import pytest

import train as cli
from helpers import measure

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains, exports or serves
def test_screening_flags_what_is_not_a_slice(run, dataset):
    from PIL import Image

    from brainmri import Predictor
    from helpers import png_bytes

    predictor = Predictor.from_pretrained(run / "release")
    assert predictor.feature_model.threshold > 0 and predictor.feature_model.means.shape[0] == 4
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "RGB")
    _, verdict = predictor.screen(png_bytes(photo))
    assert verdict.status == "not_mri" and "colour" in verdict.reason
    _, verdict = predictor.screen(png_bytes(Image.new("L", (64, 64), 0)))
    assert verdict.status == "not_mri" and "blank" in verdict.reason
    explanation = predictor.explain(next((dataset / "Testing" / "glioma").iterdir()))
    assert explanation.verdict.distance > 0  # the Mahalanobis distance was measured


@pytest.mark.slow  # trains, exports or serves
def test_screening_report_counts_every_input(run, dataset, tmp_path):
    assert cli.main(measure("screening", run / "release", dataset, tmp_path)) == 0
    report = json.loads((tmp_path / "screening.json").read_text())
    assert sum(report["in_distribution"].values()) == 26
    assert report["outliers"]["colour photo"] == {"ok": 0, "uncertain": 0, "not_mri": 12}
    assert report["outliers"]["blank"]["not_mri"] == 3
