"""Accuracy under acquisition shifts: the table, and each shift doing what its name says."""

import json
from pathlib import Path

import numpy as np
import pytest

import train as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains, exports or serves
def test_robustness_table(run, dataset, tmp_path):
    assert (
        cli.main(["robustness", "--checkpoint", str(run / "release"), "--data", str(dataset), "--out", str(tmp_path)])
        == 0
    )
    table = json.loads((tmp_path / "robustness.json").read_text())
    assert set(table) >= {
        "none",
        "gamma 0.6",
        "gamma 1.6",
        "gaussian blur",
        "downscale to 96 px and back",
        "JPEG quality 20",
        "contrast inversion (T2-like)",
    }
    assert table["none"]["n"] == 26 and table["none"]["change"] == 0
    assert "| gamma 0.6 |" in (tmp_path / "robustness.md").read_text()


def test_shifts_change_the_image_as_named():
    from brainmri.evaluation.robustness import SHIFTS

    g = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))
    g[:, :10] = 0
    assert SHIFTS["gamma 0.6"](g).mean() > g.mean() > SHIFTS["gamma 1.6"](g).mean()
    inverted = SHIFTS["contrast inversion (T2-like)"](g)
    assert inverted[0, 0] == 0 and inverted[0, 127] < 10
    assert SHIFTS["downscale to 96 px and back"](g).shape == g.shape
    assert np.abs(SHIFTS["JPEG quality 20"](g).astype(int) - g).mean() > 0
