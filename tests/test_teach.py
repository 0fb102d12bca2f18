"""The Teach tab's callbacks (brainmri.ui.teach) on the bundled cases and a tiny untrained release: the fast suite."""

import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from brainmri import Predictor, text
from brainmri.ui.teach import SHOWN_SIDE, TEACH_DIR, Progress, Teacher, large, load_cases
from helpers import CLASSES, FakeRequest

FRENCH = FakeRequest("fr-FR,fr;q=0.9")


@pytest.fixture(scope="module")
def teacher(tiny_release, tmp_path_factory):
    return Teacher(Predictor.from_pretrained(tiny_release), load_cases(), tmp_path_factory.mktemp("teach"))


def test_the_bundled_cases_are_whole_and_cover_every_class_and_both_sources():
    cases = load_cases()
    assert len(cases) >= 5 and len({c.id for c in cases}) == len(cases)
    assert {c.truth for c in cases} == set(CLASSES) and {c.source for c in cases} == {"kaggle", "tcga-lgg"}
    assert {"flair", "t1c"} <= {c.sequence for c in cases if c.source == "tcga-lgg"}
    for case in cases:
        image = Image.open(case.image)
        if case.mask is not None:  # the reader's outline is of this slice, and not empty
            mask = np.asarray(Image.open(case.mask).convert("L"))
            assert mask.shape[::-1] == image.size and (mask > 0).any(), case.id
        else:
            assert case.truth == "notumor", case.id
        for lang in text.LANGUAGES:  # every word the tab needs for it, in both languages
            for key in (
                f"points.{case.id}",
                f"sequences.{case.sequence}",
                f"planes.{case.plane}",
                f"sources.{case.source}",
            ):
                assert text.t(f"teach.{key}", lang), (lang, key)
    named = {p.name for p in TEACH_DIR.iterdir()} - {"cases.json", "README.md"}
    listed = json.loads((TEACH_DIR / "cases.json").read_text())["cases"]
    assert named == {c["image"] for c in listed} | {c["mask"] for c in listed if c["mask"]}  # nothing unlisted


def test_a_new_case_gives_nothing_away_until_it_is_revealed(teacher):
    progress, header, image, pick, result, heatmap, traced, point, score = teacher.current(Progress())
    assert "1" in header and str(len(teacher.cases)) in header
    assert max(Image.open(image).size) == SHOWN_SIDE  # the slice, drawn large for a projector
    assert pick["value"] is None and pick["interactive"]
    assert result == point == score == "" and not heatmap["visible"] and not traced["visible"]


def test_reveal_needs_a_pick(teacher):
    with pytest.raises(gr.Error, match="Choisissez"):
        teacher.reveal(Progress(), None, FRENCH)


def test_reveal_shows_the_truth_the_model_its_map_the_outline_and_the_point(teacher):
    case = teacher.cases[0]
    wrong = next(label for label in CLASSES if label != case.truth)
    progress, _, _, pick, result, heatmap, traced, point, score = teacher.reveal(Progress(), wrong)
    assert pick == {"value": wrong, "interactive": False, "__type__": "update"}
    explained = teacher.predictor.explain(case.image)
    assert text.class_name(case.truth) in result and "not this time" in result
    assert (
        text.class_name(explained.label) in result and text.percent(explained.probabilities[explained.label]) in result
    )
    assert text.t(f"teach.points.{case.id}") in point and point.startswith("**To remember:**")
    shown = np.asarray(Image.open(heatmap["value"]))
    assert np.array_equal(shown, large(explained.overlay_original)) and max(shown.shape) == SHOWN_SIDE
    outlined = np.asarray(Image.open(traced["value"]))
    plain = large(np.repeat(explained.original[..., None], 3, 2))
    assert outlined.shape == shown.shape and (outlined != plain).any()  # the reader's outline drawn on it
    assert score == text.t("teach.score", "en", you=0, model=int(teacher.model_right(case)), revealed=1)


def test_moving_stays_in_the_sequence_and_a_revealed_case_keeps_its_first_answer(teacher):
    progress = Progress()
    assert teacher.previous(progress)[0].index == 0  # no case before the first
    teacher.reveal(progress, teacher.cases[0].truth)
    teacher.reveal(progress, "pituitary" if teacher.cases[0].truth != "pituitary" else "glioma")  # a second try
    assert progress.picks == {teacher.cases[0].id: teacher.cases[0].truth}
    for _ in range(len(teacher.cases) + 2):
        teacher.next(progress)
    assert progress.index == len(teacher.cases) - 1  # no case after the last
    back = teacher.move(progress, -len(teacher.cases), None)  # back at the first: shown as it was revealed
    assert back[0].index == 0 and back[3]["value"] == teacher.cases[0].truth and "right" in back[4]


def test_the_score_at_the_end_counts_the_learner_and_the_model_in_the_pages_language(teacher):
    progress = Progress()
    for case in teacher.cases:
        last = teacher.reveal(progress, case.truth if case.truth != "notumor" else "glioma", FRENCH)
        teacher.next(progress, FRENCH)
    you = sum(case.truth != "notumor" for case in teacher.cases)
    model = sum(teacher.model_right(case) for case in teacher.cases)
    assert last[-1] == text.t("teach.done", "fr", you=you, model=model, total=len(teacher.cases))
    assert "La vérité" in last[4] and "Le modèle" in last[4]


def test_cases_with_a_class_the_model_lacks_are_refused(tiny_release, tmp_path):
    predictor = Predictor.from_pretrained(tiny_release)
    odd = [case for case in load_cases()][:1]
    from dataclasses import replace

    with pytest.raises(ValueError, match="astrocytoma"):
        Teacher(predictor, [replace(odd[0], truth="astrocytoma")], tmp_path)


def test_a_case_from_a_source_the_model_trained_on_says_so(teacher, bundled, tmp_path):
    """The bundled model trained on TCGA-LGG: its answer on the TCGA-LGG cases is marked as no test of a new scan;
    on the Kaggle Testing cases, and for a model that never saw TCGA-LGG (the tiny one), nothing is added."""
    said = text.t("teach.seen_source")
    trained = Teacher(bundled, teacher.cases, tmp_path)
    assert trained.trained_on == {"tcga-lgg"} and teacher.trained_on == set()
    for index, case in enumerate(teacher.cases):
        results = [t.reveal(Progress(index=index), case.truth)[4] for t in (trained, teacher)]
        assert (said in results[0]) == (case.source == "tcga-lgg") and said not in results[1]
    index = [c.source for c in teacher.cases].index("tcga-lgg")
    french = trained._view(Progress(index=index, picks={teacher.cases[index].id: "glioma"}), "fr")[4]
    assert text.t("teach.seen_source", "fr") in french and said not in french
