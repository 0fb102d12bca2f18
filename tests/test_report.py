"""brainmri.evaluation.report: saved evaluations turned into words for people."""

from brainmri.evaluation import report


def test_about_reads_the_served_release_figures():
    metrics = {"full": {"accuracy": 0.912}}
    crossval = {"heldout": {"sartaj": {"metrics": {"accuracy": 0.5, "per_class": {"glioma": {"recall": 0.25}}}}}}
    about = report.about_markdown(metrics, crossval, {"contrast inversion (T2-like)": {"accuracy": 0.333}}, "en")
    assert "right on about 91 in 100" in about and "87 in 100" not in about  # not the bundled model's figures
    assert "without SARTAJ is right on 50 in 100 SARTAJ slices (gliomas: 25 in 100)" in about
    assert "right on 33 in 100 Testing slices" in about
    french = report.about_markdown(metrics, None, None, "fr")
    assert "environ 91 coupes sur 100" in french and "sans SARTAJ" not in french
    assert "No evaluation is saved for this model" in report.about_markdown(None, None, None, "en")


def test_the_model_tabs_figures_are_drawn_in_each_language_and_fall_back_to_english(tmp_path):
    """The confusion matrix and the reliability diagram from a saved evaluation, in every language the page speaks
    (class names and words translated, decimal commas in French); a figure drawn only in English stays English."""
    import json
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from brainmri.evaluation.metrics import headline_figures

    saved = json.loads((Path(__file__).resolve().parents[1] / "assets" / "metrics" / "metrics.json").read_text())
    written = headline_figures(saved["full"], saved["full"]["labels"], tmp_path)
    assert {p.name for p in written} == {
        "confusion_full_normalized.png",
        "confusion_full_normalized.fr.png",
        "reliability_full.png",
        "reliability_full.fr.png",
    }
    english, french = (Image.open(report.figure(tmp_path, "confusion_normalized", lang)) for lang in ("en", "fr"))
    assert report.figure(tmp_path, "confusion_normalized", "fr").endswith(".fr.png") and english.size != (0, 0)
    assert english.size != french.size or (np.asarray(english) != np.asarray(french)).any()  # other words on it
    assert report.figure(tmp_path, "reliability", "de") == report.figure(tmp_path, "reliability")  # no German one
    (tmp_path / "roc_full.png").write_bytes(b"")
    assert report.figure(tmp_path, "roc", "fr") == str(tmp_path / "roc_full.png")  # English where no French
    assert report.figure(tmp_path, "curves", "fr") is None


def test_the_model_tab_opens_in_plain_words_with_where_it_fails():
    metrics = {"full": {"accuracy": 0.9764}}
    crossval = {"heldout": {"sartaj": {"metrics": {"accuracy": 0.871}}, "figshare": {"metrics": {"accuracy": 0.84}}}}
    lgg = {"by_sequence": {"flair": {"glioma": {"accuracy": 0.095}}, "t1c": {"glioma": {"accuracy": 0.561}}}}
    lgg["notumor"] = {"accuracy": 0.327}
    plain = report.plain_summary(metrics, crossval, lgg, "en")
    assert "right about 98 times in 100" in plain and "about 84 to 87 in 100" in plain
    assert "about 10 in 100 lower-grade gliomas in FLAIR, 56 in 100 in T1 with contrast" in plain
    assert 'calls 33 in 100 tumour-free slices "no tumour"' in plain
    french = report.plain_summary(metrics, None, None, "fr")
    assert "environ 98 fois sur 100" in french and "Personne ne l'a mesuré" in french and "TCGA" not in french


def test_the_held_out_columns_name_the_recipe_their_folds_ran_and_the_served_threshold():
    """A release can ship a later recipe than the one its saved held-out folds ran (r22 beside r21's folds): every
    text that shows those columns names whose they are, and the "ok" threshold is the served release's own."""
    held = {"metrics": {"accuracy": 0.871, "per_class": {"glioma": {"recall": 0.93}}}}
    crossval = {"heldout": {"sartaj": {**held, "run": "r21-sartaj-ft"}, "figshare": {**held, "run": "r21-figshare-ft"}}}
    assert report.heldout_recipe(crossval) == "recipe r21" and report.heldout_recipe(crossval, "fr") == "la recette r21"
    assert report.heldout_recipe({"heldout": {"sartaj": held}}) == "the same recipe"  # folds without run names
    note = report.trust_note(crossval, 0.9852, "en")
    assert "a model of recipe r21 trained **without**" in note and '"ok" only at 98.5% confidence' in note
    assert "à partir de 90\u202f% de confiance" in report.trust_note(crossval, 0.9, "fr")
    metrics = {"full": {"accuracy": 0.9764}}
    assert "a model of recipe r21, on a collection" in report.plain_summary(metrics, crossval, None, "en")
    about = report.about_markdown(metrics, crossval, None, "en", min_confidence=0.9852, grid="10×10")
    assert "A model of recipe r21 trained without SARTAJ" in about and "below 98.5% confidence" in about
    assert "feature map is 10×10 cells" in about and "90 %" not in about and "7×7" not in about


def test_the_plain_words_fall_back_to_the_held_out_institution_when_no_leave_out_figure_is_the_models():
    """A model trained on TCGA-LGG has no "never seen" figure of its own: the opening says what a model of its recipe
    did on the institution it never trained on, and that the page mostly says "uncertain" there."""
    metrics = {"full": {"accuracy": 0.975}}
    held = {"sites": ["DU"], "notumor": {"accuracy": 0.727}, "all": {"ok_share": 0.125}}
    held["by_sequence"] = {s: {"glioma": {"accuracy": a}} for s, a in (("flair", 0.807), ("t1", 0.79), ("t1c", 0.828))}
    plain = report.plain_summary(metrics, None, None, "en", held)
    assert "(TCGA-LGG DU), finds about 81 in 100 lower-grade gliomas in FLAIR, 83 in 100 in T1 with contrast" in plain
    assert 'calls 73 in 100 tumour-free slices "no tumour"; there it answers "ok" on 12 in 100' in plain
    assert "Nobody has measured it" not in plain
    assert "TCGA-LGG DU" in report.plain_summary(metrics, None, None, "fr", held)
    assert "Nobody has measured it" in report.plain_summary(metrics, None, None, "en", None)


def test_a_model_trained_on_tcga_lgg_is_told_apart_from_the_one_that_never_saw_it():
    """The trust table's note, the name of the leave-out row's model in each language, and About's sentence on the
    held-out institution, for a bundled model whose recipe trained on TCGA-LGG (r22) and for one that never saw it."""
    held = {"sites": ["DU"], "patients": 45, "n": 3014, "notumor": {"accuracy": 0.727}}
    held["all"] = {"ok_share": 0.125, "ok_accuracy": 0.989}
    held["by_sequence"] = {s: {"glioma": {"accuracy": a}} for s, a in (("flair", 0.807), ("t1", 0.79), ("t1c", 0.828))}
    never = {**held, "sites": ["CS", "DU", "EZ", "FG"], "patients": 76, "n": 4636, "weights_sha256": "a" * 64}
    never["model"] = {"en": "r21, the model bundled before", "fr": "r21, le modèle fourni avant"}
    trained = report.newsource_markdown(held, never, "en", weights_sha256="b" * 64)
    assert "r21, the model bundled before, trained without TCGA-LGG" in trained
    assert "This model trained on TCGA-LGG" in trained and "expect the last row" not in trained
    french = report.newsource_markdown(held, never, "fr", weights_sha256="b" * 64)
    assert "r21, le modèle fourni avant, entraîné sans" in french and "s'est entraîné sur TCGA-LGG" in french
    own = report.newsource_markdown(None, never, "en", weights_sha256="a" * 64)  # the bundled model never saw it
    assert "the bundled model, trained without" in own and "expect the last row" in own
    assert "expect the last row" in report.newsource_markdown(held, never, "en", weights_sha256="a" * 64)
    assert "sha256 `aaaaaaaaaaaa`" in report.newsource_markdown(held, {**never, "model": None}, "en", "b" * 64)
    about = report.about_markdown({"full": {"accuracy": 0.973}}, None, None, "en", heldout_institution=held)
    assert "(TCGA-LGG DU), finds 81 in 100 lower-grade gliomas in FLAIR and 83 in 100 in T1 with contrast" in about
    assert 'calls 73 in 100 tumour-free slices "no tumour"' in about
    assert "(TCGA-LGG DU), trouve 81 gliomes" in report.about_markdown(
        {"full": {"accuracy": 0.973}}, None, None, "fr", heldout_institution=held
    )
    assert "TCGA-LGG DU" not in report.about_markdown({"full": {"accuracy": 0.973}}, None, None, "en")
