"""The one-page case report: its text (both languages), one page, nothing that names the file or the patient."""

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from brainmri import Predictor
from brainmri.evaluation import report
from brainmri.text import class_name, percent
from brainmri.ui.casereport import ModelFacts, write_case_report
from helpers import CLASSES, synthetic_slice

METRICS = Path(__file__).resolve().parents[1] / "assets" / "metrics"


@pytest.fixture(scope="module")
def predictor(tiny_release):
    return Predictor.from_pretrained(tiny_release, expected_labels=CLASSES)


def _text(path) -> tuple[int, str, dict]:
    reader = PdfReader(path)
    return (
        len(reader.pages),
        " ".join(" ".join(page.extract_text().split()) for page in reader.pages),
        dict(reader.metadata),
    )


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_report_is_one_page_with_the_answer_and_the_model(predictor, tiny_release, tmp_path, lang):
    source = tmp_path / "Patient-Jane-Doe-MRN5531977.png"
    synthetic_slice(0, np.random.default_rng(1), (96, 80)).save(source)
    explanation = predictor.explain(source)
    metrics = {"full": {"accuracy": 0.9794}}
    crossval = {"heldout": {"sartaj": {"metrics": {"accuracy": 0.7999}, "run": "r21-sartaj-ft"}}}
    institution = {"sites": ["DU"], "by_sequence": {s: {"glioma": {"accuracy": a}} for s, a in (("flair", 0.8069),)}}
    assert ModelFacts.from_release(predictor.config, metrics, crossval, institution).institution == {}  # no T1C
    institution["by_sequence"]["t1c"] = {"glioma": {"accuracy": 0.8279}}
    facts = ModelFacts.from_release(predictor.config, metrics, crossval, institution)
    out = write_case_report(
        tmp_path / "case.pdf", explanation, facts, lang, now=datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
    )
    pages, text, metadata = _text(out)
    assert pages == 1
    assert class_name(explanation.label, lang) in text  # the predicted class, in words
    assert all(class_name(label, lang) in text for label in CLASSES)  # the four bars
    assert predictor.config["weights_sha256"] in text.replace(" ", "")
    figures = (0.9794, 0.7999, 0.8069, 0.8279, explanation.probabilities[explanation.label])
    shown = [" ".join(percent(v, lang).split()) for v in figures]  # the narrow space read back as a space
    assert all(figure in text for figure in shown)  # Testing, held-out SARTAJ and the bar, as the language writes them
    assert ("a model of recipe r21" if lang == "en" else "un modèle de la recette r21") in " ".join(text.split())
    said = "TCGA-LGG DU, by a model of this" if lang == "en" else "TCGA-LGG DU, par un modèle"
    assert said in " ".join(text.split())  # the held-out institution, by a model of the served model's recipe
    assert "2026-11-26 09:30" in text
    assert metadata["/CreationDate"].startswith("D:20261126093000")  # the page's time, not the clock's
    assert ("not a medical device" if lang == "en" else "pas un dispositif médical") in text.lower()
    for secret in ("Jane", "Doe", "MRN5531977", "5531977", "Patient", str(tmp_path)):
        assert secret not in text and all(secret not in str(v) for v in metadata.values())


def test_report_says_when_there_is_no_saved_evaluation(predictor, tmp_path):
    explanation = predictor.explain(np.asarray(synthetic_slice(3, np.random.default_rng(2), (80, 80))))
    facts = ModelFacts.from_release(predictor.config, None, None)
    _, text, _ = _text(write_case_report(tmp_path / "case.pdf", explanation, facts))
    assert "No saved evaluation for this model" in text


def test_report_refuses_an_explanation_without_the_original(predictor, tmp_path):
    fitted = predictor.prepare(np.asarray(synthetic_slice(1, np.random.default_rng(3), (80, 80))))
    with pytest.raises(ValueError, match="needs an explanation of a file"):
        write_case_report(
            tmp_path / "case.pdf",
            predictor.explain_prepared(fitted),
            ModelFacts.from_release(predictor.config, None, None),
        )


def test_facts_from_the_bundled_evaluation():
    metrics = report.load_metrics(METRICS)
    if metrics is None:
        pytest.skip("no bundled evaluation")
    facts = ModelFacts.from_release(
        {"architecture": "a", "weights_sha256": "s", "pretrained_cfg": {"input_size": [3, 112, 112]}},
        metrics,
        report.load_json(METRICS, "crossval.json"),
    )
    assert facts.testing_accuracy == metrics["full"]["accuracy"] and facts.input_size == 112
    assert "SARTAJ" in facts.heldout_accuracy


def test_facts_of_the_served_release_come_from_its_own_evaluation(bundled, tmp_path):
    """The page's and the README picture's facts: the bundled release's figures with its held-out institution;
    none for weights the saved evaluation was not measured on."""
    facts = ModelFacts.from_metrics_dir(bundled.config, METRICS)
    heldout = report.load_json(METRICS, "lgg-heldout-institution.json")
    assert facts.testing_accuracy == report.load_metrics(METRICS)["full"]["accuracy"]
    assert facts.institution["sites"] == ", ".join(heldout["sites"])
    assert facts.institution["flair"] == heldout["by_sequence"]["flair"]["glioma"]["accuracy"]
    other = ModelFacts.from_metrics_dir({**bundled.config, "weights_sha256": "0" * 64}, METRICS)
    assert other.testing_accuracy is None and not other.heldout_accuracy and not other.institution


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_report_on_an_image_that_is_not_an_mri_shows_no_class(predictor, tmp_path, lang):
    """As on the page: a colour photograph gets its verdict and reason, but no heatmap, no bars, no class."""
    from PIL import Image

    photo = np.zeros((96, 96, 3), np.uint8)
    photo[..., 0], photo[20:70, 20:70, 1] = 200, 180  # red with a green square: colourful
    source = tmp_path / "photo.png"
    Image.fromarray(photo).save(source)
    explanation = predictor.explain(source)
    assert explanation.verdict.status == "not_mri"
    _, text, _ = _text(
        write_case_report(
            tmp_path / "case.pdf", explanation, ModelFacts.from_release(predictor.config, None, None), lang
        )
    )
    assert ("Not read" if lang == "en" else "Non lue") in text
    assert explanation.verdict.reason_in(lang).split(":")[0].split()[0] in text
    assert not any(class_name(label, lang) in text for label in CLASSES)


def test_reports_drawn_at_once_do_not_swap_their_settings(bundled, tmp_path):
    """The page serves requests in threads; matplotlib's settings are global: each report keeps its own text."""
    from concurrent.futures import ThreadPoolExecutor

    root = Path(__file__).resolve().parents[1]
    explanation = bundled.explain(sorted((root / "assets" / "examples").glob("*"))[0])
    facts = ModelFacts.from_release(bundled.config, None, None)

    def draw(index):
        path = tmp_path / f"report-{index}.pdf"
        write_case_report(path, explanation, facts, "en")
        lines = [line for page in PdfReader(path).pages for line in page.extract_text().splitlines()]
        return [line for line in lines if "(UTC)" not in line]

    draw(0)  # the fonts are open from here on
    files = len(os.listdir("/proc/self/fd"))
    with ThreadPoolExecutor(3) as pool:  # all at once, each from a thread of its own
        texts = list(pool.map(draw, range(3)))
    assert all(text == texts[0] for text in texts) and "\x00" not in " ".join(texts[0])
    assert len(os.listdir("/proc/self/fd")) <= files  # drawn on one thread: no thread opens fonts of its own


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("shape", [(200, 72), (72, 200), (96, 96)], ids=["portrait", "landscape", "square"])
def test_nothing_on_the_page_overlaps_at_any_slice_shape(predictor, lang, shape):
    """The notice, the titles, the slices, the bars and the text blocks each keep their own place on the page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import AxesImage

    from brainmri.ui.casereport import case_page

    explanation = predictor.explain(np.asarray(synthetic_slice(0, np.random.default_rng(4), shape)))
    fig = case_page(explanation, ModelFacts.from_release(predictor.config, {"full": {"accuracy": 0.9}}, None), lang)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # applies each slice's aspect: its box is where its pixels land
    boxes = [t.get_window_extent(renderer) for t in fig.texts]
    for ax in fig.axes:
        boxes += [ax.title.get_window_extent(renderer)] if ax.title.get_text() else []
        boxes += [child.get_window_extent(renderer) for child in ax.get_children() if isinstance(child, AxesImage)]
    for i, a in enumerate(boxes):
        assert 0 <= a.x0 and a.x1 <= fig.bbox.width and 0 <= a.y0 and a.y1 <= fig.bbox.height  # on the page
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
