"""The README's TCGA-LGG rows say what their saved evaluations say: a figure the files no longer support is a bug."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the start of a row of the README's trust table -> the evaluation it reports
LGG_ROWS = {
    "TCGA-LGG, never seen": "assets/metrics/lgg-leave-out.json",
    "TCGA-LGG institution DU held out": "assets/metrics/lgg-heldout-institution.json",
}


def _row(start: str) -> list[str]:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| {start}")]
    assert len(rows) == 1, f"README: expected one trust-table row starting {start!r}, found {len(rows)}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def _percentages(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell)]


@pytest.mark.parametrize("start", sorted(LGG_ROWS))
def test_lgg_rows_match_their_saved_evaluation(start):
    saved = json.loads((ROOT / LGG_ROWS[start]).read_text())
    _, images, _, recall, no_tumour, ok = _row(start)
    assert int(images.replace(",", "")) == saved["n"]
    assert _percentages(recall) == [
        round(100 * saved["by_sequence"][seq]["glioma"]["accuracy"], 1) for seq in ("flair", "t1", "t1c")
    ]
    assert _percentages(no_tumour) == [round(100 * saved["notumor"]["accuracy"], 1)]
    assert _percentages(ok) == [round(100 * saved["all"][key], 1) for key in ("ok_share", "ok_accuracy")]


def test_testing_rows_match_the_bundled_evaluation():
    """Testing and its de-duplicated half, as the bundled model's saved evaluation and verdict record say."""
    metrics = json.loads((ROOT / "assets/metrics/metrics.json").read_text())
    verdict = json.loads((ROOT / "assets/metrics/testing-selective/selective.json").read_text())["verdict"]
    for start, block in (("Testing |", metrics["full"]), ("Testing, de-duplicated", metrics["dedup"])):
        _, images, accuracy, glioma, no_tumour, ok = _row(start)
        assert int(images.replace(",", "")) == block["n"]
        assert _percentages(accuracy) == [round(100 * v, 2) for v in (block["accuracy"], *block["accuracy_ci95"])]
        recalls = [round(100 * block["per_class"][c]["recall"], 2) for c in ("glioma", "notumor")]
        assert _percentages(glioma) + _percentages(no_tumour) == recalls
    assert _percentages(_row("Testing |")[5]) == [round(100 * verdict[k], 2) for k in ("ok_share", "ok_accuracy")]
    robustness = json.loads((ROOT / "assets/metrics/robustness.json").read_text())
    inverted = _row("Testing, contrast inverted")[2]
    assert _percentages(inverted) == [round(100 * robustness["contrast inversion (T2-like)"]["accuracy"], 2)]


def test_the_verdict_and_heatmap_figures_are_the_bundled_releases():
    """The "ok" threshold, the heatmap's grid and where Grad-CAM's peak falls, as the bundled release says them."""
    readme = (ROOT / "README.md").read_text()
    config = json.loads((ROOT / "assets/model/config.json").read_text())
    localisation = json.loads((ROOT / "assets/metrics/localisation.json").read_text())
    heldout = json.loads((ROOT / "assets/metrics/lgg-heldout-institution.json").read_text())
    threshold = 100 * config["screening"]["min_confidence"]
    assert f'"ok" only at {threshold:.1f} % confidence or more' in readme
    pointing = 100 * localisation["methods"]["gradcam"]["all"]["pointing_game"]
    images = localisation["images"]
    assert f"tumour outline on {pointing:.1f} % of {images}\n  figshare Testing slices" in readme
    assert f"FLAIR outline on {100 * heldout['pointing_game_glioma']:.1f} % of DU's glioma slices" in readme
    grid = "×".join(map(str, localisation["cam_grid"]))
    size = config["pretrained_cfg"]["input_size"][-1]
    assert f"a {grid} map" in readme and f"convnext_atto_ols, {size} px" in readme and f"{size}-pixel" in readme
