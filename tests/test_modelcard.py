"""The model card of a release folder, from its saved record."""

import json
import re
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


def test_the_card_is_written_in_each_language_keeping_the_training_it_recorded(tmp_path):
    """Rewritten from the saved evaluation without the training runs (as for the bundled model): the English card
    keeps its Training section word for word, the French card says everything else in French, numbers included;
    the Model tab shows the card of the page's language."""
    import shutil

    from brainmri.evaluation import report
    from brainmri.evaluation.modelcard import CARDS, kept_training_section, write_model_card
    from brainmri.evaluation.robustness import SHIFTS, shift_name

    release = tmp_path / "release"
    release.mkdir()
    for name in ("config.json", "README.md"):
        shutil.copyfile(ROOT / "assets" / "model" / name, release / name)
    before = kept_training_section(release)
    assert any(re.match(r"python train\.py (train|release) ", line) for line in before)  # the runs' own command
    assert write_model_card(release, ROOT / "assets" / "metrics") == release / "README.md"
    assert sorted(p.name for p in release.glob("README*.md")) == sorted(CARDS.values())
    english, french = (release / CARDS[lang] for lang in ("en", "fr"))
    assert kept_training_section(release) == before  # written again, still the runs' own record
    card = english.read_text()
    full = json.loads((ROOT / "assets" / "metrics" / "metrics.json").read_text())["full"]
    testing = {
        lang: f"{report._pct(full['accuracy'], lang)} {report._ci(full['accuracy_ci95'], lang)}"
        for lang in ("en", "fr")
    }
    assert "## Scans from another source: TCGA-LGG" in card and testing["en"] in card  # e.g. 97.64 % [96.80, 98.40]
    body = french.read_text()
    licence = card.split("\n")[1]  # the weights' licence: apache-2.0, or cc-by-nc-sa-4.0 once trained on TCGA-LGG
    assert licence.startswith("license: ") and body.startswith(f"---\n{licence}\n")  # the same front matter
    for said in ("## Modèle", "## Limites", testing["fr"], "flou gaussien", "Options et commandes"):
        assert said in body, said
    for english_only in ("## Model\n", "Intended use", "gaussian blur", testing["en"]):
        assert english_only not in body, english_only
    # no French card of its own yet: it keeps the English card's Training lines and says they are in English
    assert re.search(r"\(en anglais\) :\n\n- (Stage 1|Recipe): recipe=scratch", body)  # one stage: "Recipe"
    # with the bundled French card beside it, each card keeps its own language's record
    shutil.copyfile(ROOT / "assets" / "model" / CARDS["fr"], french)
    kept_french = kept_training_section(release, "fr")
    write_model_card(release, ROOT / "assets" / "metrics")
    assert kept_training_section(release, "fr") == kept_french and kept_training_section(release) == before
    body = french.read_text()
    assert re.search(r"\n- (Étape 1|Recette) : recipe=scratch", body)
    for said in (
        "Meilleure époque",
        "2 cœurs CPU",
        "étiquetées à la main",
        "le modèle fourni",
    ):
        assert said in body, said
    for english_only in (
        "Stage 1",
        "- Recipe:",
        "Best epoch",
        "Hardware",
        "hand-labelled",
        "trained without",
        "(en anglais)",
    ):
        assert english_only not in body, english_only
    assert report.model_card(release, "fr").startswith("# brainmri — ") and "## Modèle" in report.model_card(
        release, "fr"
    )
    assert "## Model\n" in report.model_card(release, "de")  # no German card: English
    assert [shift_name(name) for name in SHIFTS] == list(SHIFTS)
    assert all(shift_name(name, "fr") != name for name in SHIFTS if name != "JPEG quality 20")


def test_the_t2_checks_record_is_said_in_each_language():
    from brainmri.evaluation.modelcard import _fitted_on, fitted_on_text

    recorded = fitted_on_text(445, 66, "sequence-labels.csv", "sartaj")  # as `train.py sequence-check` writes it
    assert recorded == "445 hand-labelled Training slices (66 T2), sequence-labels.csv, none from sartaj"
    assert _fitted_on(recorded, "en") == recorded
    assert _fitted_on(recorded, "fr") == (
        "445 coupes de Training étiquetées à la main (66 T2), sequence-labels.csv, aucune de sartaj"
    )
    assert _fitted_on("slices drawn by hand", "fr") == "slices drawn by hand"  # another form: as recorded
