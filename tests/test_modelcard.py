"""The model card of a release folder, from its saved record."""

import json
from pathlib import Path

import pytest

import train as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains, exports or serves
def test_model_card(run, tmp_path):
    import shutil

    release = tmp_path / "release"
    shutil.copytree(run / "release", release)
    card_command = ["card", "--checkpoint", str(release), "--metrics", str(run / "evaluation")]
    assert cli.main([*card_command, "--run", str(run), "--command", "python train.py train ..."]) == 0
    card = (release / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "library_name: timm" in card
    for needed in (
        "not a medical device",
        "Testing (de-duplicated)",
        "accuracy (95 % CI)",
        "Limitations",
        "python train.py train ...",
        "Seed: 0",
        "balance=none",
    ):  # every recipe option, sampling included
        assert needed.lower() in card.lower(), needed
    wall = json.loads((run / "summary.json").read_text())["wall_seconds"]
    assert f"Training time: {wall / 60:.0f} min wall-clock" in card
    # a model trained in two stages records both, in order, with their total time
    stages = ["--run", str(run), "--run", str(run), "--command", "stage one", "--command", "stage two"]
    assert cli.main([*card_command, *stages]) == 0
    card = (release / "README.md").read_text()
    assert "- Stage 1: recipe=scratch" in card and "- Stage 2:" in card and "Training time (all stages)" in card
    assert f"Training time (all stages): {2 * wall / 60:.0f} min wall-clock" in card
    assert card.index("stage one") < card.index("stage two")


def test_model_card_says_how_the_epoch_was_chosen():
    from brainmri.evaluation.modelcard import _selection_text

    assert _selection_text({}) == "lowest validation loss"
    assert _selection_text({"invert_prob": 0.5}) == "lowest mean of the clean and contrast-inverted validation losses"
    assert _selection_text({"invert_prob": 0.5, "clean_floor": 0.0}).endswith("at least the starting model's")
    assert _selection_text({"clean_floor": 0.005}).endswith("at least the starting model's less 0.5 points")
