"""Do heatmaps land on the tumour? The localisation scores, the command, the outlined gallery."""

import json

import numpy as np
import pytest

import train as cli
from brainmri.evaluation.localisation import localisation_scores, widen
from helpers import measure, synthetic_origin


def test_localisation_scores():
    masks = np.zeros((2, 10, 10), np.uint8)
    masks[:, 2:4, 2:4] = 255
    heat = np.zeros((2, 10, 10), np.float32)
    heat[0, 3, 3] = 1.0  # peak on the tumour
    heat[1] = 1.0 / 100
    heat[1, 8, 8] = 1.0  # peak far away, energy spread
    scores = localisation_scores(heat, masks, widen_px=1)
    assert scores["pointing"].tolist() == [True, False]
    assert scores["energy_inside"][0] == pytest.approx(1.0) and scores["energy_ratio"][0] == pytest.approx(25.0)
    assert scores["energy_inside"][1] == pytest.approx(0.04 / 1.99, rel=1e-4)
    assert widen(masks[:1] > 0, 1).sum() == 16


@pytest.mark.slow  # trains, exports or serves
def test_localisation_command(run, dataset, collections, cache_dir, tmp_path, capsys):
    _, masks = collections
    command = [
        "localisation",
        "--checkpoint",
        str(run / "release"),
        "--data",
        str(dataset),
        "--masks",
        str(masks),
        "--out",
        str(tmp_path),
        "--cache-dir",
        str(cache_dir),
        "--method",
        "gradcam",
    ]
    assert cli.main(command) == 0
    report = json.loads((tmp_path / "localisation.json").read_text())
    figshare_testing = [
        p
        for p in dataset.joinpath("Testing").rglob("*")
        if p.is_file()
        and synthetic_origin(p.relative_to(dataset).as_posix()) == "figshare"
        and "/notumor/" not in p.as_posix()
    ]
    assert report["images"] == len(figshare_testing) and list(report["methods"]) == ["gradcam"]
    assert 0 <= report["methods"]["gradcam"]["all"]["pointing_game"] <= 1
    assert "| gradcam | all |" in capsys.readouterr().out
    # on the run's own validation split: only the Training images split.csv marks "val" that have a mask
    assert cli.main([*command, "--validation-of", str(run)]) == 0
    report = json.loads((tmp_path / "localisation.json").read_text())
    val = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:] if line.endswith(",val")]
    with_mask = [p for p in val if synthetic_origin(f"Training/{p}") == "figshare" and not p.startswith("notumor/")]
    assert report["split"] == "validation" and report["images"] == len(with_mask)


def test_outline_draws_the_mask_border_only():
    from brainmri.evaluation.metrics import outline

    mask = np.zeros((9, 9), np.uint8)
    mask[2:7, 2:7] = 255
    drawn = outline(np.full((9, 9), 50, np.uint8), mask)
    border = (drawn == (0, 255, 255)).all(axis=2)
    assert border.sum() == 16 and not border[3:6, 3:6].any() and not border[0].any()


@pytest.mark.slow  # trains, exports or serves
def test_evaluate_outlines_tumours_in_the_gallery(run, dataset, collections, cache_dir, tmp_path):
    _, masks = collections
    assert (
        cli.main(
            measure(
                "evaluate", run / "release", dataset, tmp_path, "--cache-dir", str(cache_dir), "--masks", str(masks)
            )
        )
        == 0
    )
    assert (tmp_path / "gradcam_gallery.png").stat().st_size > 0
