"""Accuracy under acquisition shifts: the table, and each shift doing what its name says."""

import json
from pathlib import Path

import numpy as np
import pytest

import train as cli
from helpers import measure, synthetic_origin

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains, exports or serves
def test_robustness_table(run, dataset, tmp_path):
    assert cli.main(measure("robustness", run / "release", dataset, tmp_path)) == 0
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


@pytest.mark.slow  # trains, exports or serves
def test_robustness_on_a_validation_split_or_a_collection(run, dataset, collections, tmp_path, capsys):
    origins, _ = collections
    val = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:] if line.endswith(",val")]
    assert cli.main(measure("robustness", run / "release", dataset, tmp_path / "val", "--validation-of", str(run))) == 0
    table = json.loads((tmp_path / "val" / "robustness.json").read_text())
    assert table["none"]["n"] == len(val) and table["none"]["set"] == f"validation of {run.name}"
    assert f"| shift (validation of {run.name}) |" in (tmp_path / "val" / "robustness.md").read_text()
    # every sartaj image of both folders, the corrupt file skipped
    assert (
        cli.main(
            measure(
                "robustness",
                run / "release",
                dataset,
                tmp_path / "sartaj",
                "--origins",
                str(origins),
                "--collection",
                "sartaj",
            )
        )
        == 0
    )
    table = json.loads((tmp_path / "sartaj" / "robustness.json").read_text())
    sartaj = [
        p
        for p in dataset.rglob("*")
        if p.is_file() and p.name != "corrupt.jpg" and synthetic_origin(p.relative_to(dataset).as_posix()) == "sartaj"
    ]
    assert table["none"]["n"] == len(sartaj) and table["none"]["set"] == "all sartaj images"
    assert table["contrast inversion (T2-like)"]["n"] == len(sartaj)
    capsys.readouterr()
    assert cli.main(measure("robustness", run / "release", dataset, tmp_path / "x", "--collection", "sartaj")) != 0
    assert "--collection needs --origins" in capsys.readouterr().err
