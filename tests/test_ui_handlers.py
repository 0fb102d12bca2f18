"""The page's handlers (brainmri.ui.handlers) without a server, on a tiny untrained release: the fast suite."""

import csv
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from brainmri import Predictor, text
from brainmri.ui.handlers import Handlers
from helpers import CLASSES, FakeRequest, png_bytes, synthetic_scan


@pytest.fixture(scope="module")
def handlers(tiny_release, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))  # outputs land here
        yield Handlers(Predictor.from_pretrained(tiny_release))


def _first_ok(handlers, dataset):
    """A synthetic Testing slice the tiny model answers (not "not a brain MRI slice")."""
    for path in sorted((dataset / "Testing").rglob("*.*")):
        if isinstance(handlers.classify(str(path))[0], dict):
            return str(path)
    pytest.skip("the tiny model refuses every synthetic slice")


def test_classify_gives_label_overlay_and_note(handlers, dataset):
    path = _first_ok(handlers, dataset)
    label, overlay, note, _, _, shown = handlers.classify(path)
    image, overlay2 = handlers.model_input(path)
    assert list(label) == CLASSES  # the API's stable keys
    assert (
        list(shown)
        == [text.class_name(k, "en") for k in CLASSES]
        == ["Glioma", "Meningioma", "No tumour", "Pituitary tumour"]
    )
    assert list(shown.values()) == list(label.values())
    assert Path(overlay).parent == Path(image).parent == Path(overlay2).parent  # files in Gradio's cache
    width, height = Image.open(path).size
    assert np.asarray(Image.open(overlay)).shape == (height, width, 3)  # on the slice at its own resolution
    assert np.asarray(Image.open(overlay2)).shape == (32, 32, 3) and np.asarray(Image.open(image)).shape == (32, 32)
    assert text.class_name(max(label, key=label.get), "en") in note
    again = handlers.classify(path)  # the same answer again is a new file: no file is ever rewritten
    assert again[1] != overlay and Image.open(again[1]).tobytes() == Image.open(overlay).tobytes()


def test_reexplain_follows_class_and_method(handlers, dataset):
    path = str(next((dataset / "Testing" / "pituitary").iterdir()))
    overlay, _, note = handlers.reexplain(path, "notumor", "gradcam++")
    assert Image.open(overlay).size == Image.open(path).size
    verdict = handlers.predictor.explain(path).verdict
    expected = (
        "Not read: this page gives no class" if verdict.status == "not_mri" else "Heatmap: Grad-CAM++ for *No tumour*"
    )
    assert expected in note


def test_opacity_and_outline_redraw_the_overlay(handlers, dataset):
    path = _first_ok(handlers, dataset)
    slice_ = np.asarray(Image.open(path).convert("L"))
    bare, _, _ = handlers.reexplain(path, "predicted", "gradcam", 0.0, False)
    np.testing.assert_array_equal(np.asarray(Image.open(bare)), np.repeat(slice_[..., None], 3, axis=2))
    outlined = np.asarray(Image.open(handlers.reexplain(path, "predicted", "gradcam", 0.0, True)[0]))
    assert (outlined != np.asarray(Image.open(bare))).any(axis=2).mean() < 0.2  # a thin outline, nothing else
    strong = np.asarray(Image.open(handlers.reexplain(path, "predicted", "gradcam", 1.0, False)[0])).astype(int)
    heat = handlers.predictor.explain(path).heatmap_original
    changed = (strong != np.asarray(Image.open(bare))).any(axis=2)
    assert not changed[heat == 0].any()  # colour only where the heat is
    assert changed[heat > 0.05].all()


def test_french_page_names_classes_in_words(handlers, dataset, tmp_path):
    path = _first_ok(handlers, dataset)
    french = FakeRequest("fr-FR,fr;q=0.9,en;q=0.8")
    label, _, note, _, _, shown = handlers.classify(path, request=french)
    assert list(label) == CLASSES  # the API keeps its keys whatever the browser's language
    assert list(shown) == ["Gliome", "Méningiome", "Pas de tumeur", "Tumeur hypophysaire"]
    assert text.class_name(max(label, key=label.get), "fr") in note
    captions = [caption for _, caption in handlers.all_classes(path, request=french)]
    assert [c.split(":")[0] for c in captions] == list(shown)
    photo = tmp_path / "photo.png"
    photo.write_bytes(
        png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    )
    label, *_, note, _, _, shown = handlers.classify(str(photo), request=french)
    assert label == "Not a brain MRI slice" and shown == "Pas une coupe IRM cérébrale"
    assert "couleur" in note  # the verdict's reason, in French
    with pytest.raises(gr.Error, match="Déposez d'abord une image"):
        handlers.classify(None, request=french)
    table, download = handlers.classify_batch([path], request=french)
    assert list(table.columns)[:3] == ["fichier", "classe", "Gliome"]
    with open(download["value"]) as handle:  # the CSV keeps the stable English keys
        assert next(csv.reader(handle)) == ["file", "class", *CLASSES, "note"]


def test_report_is_a_pdf_in_the_cache_in_the_page_language(handlers, dataset):
    from pypdf import PdfReader

    path = _first_ok(handlers, dataset)
    for lang, request in (("en", None), ("fr", FakeRequest("fr"))):
        out = handlers.report(path, request=request)
        # inside the cache, in a folder of its own, named for people by the time it was made
        assert Path(out).parent.parent == handlers.output_dir
        assert re.fullmatch(r"brainmri-report-\d{8}-\d{6}\.pdf", Path(out).name)
        reader = PdfReader(out)
        page_text = " ".join(reader.pages[0].extract_text().split())
        label = handlers.predictor.explain(path).label
        assert len(reader.pages) == 1 and text.class_name(label, lang) in page_text
        assert Path(path).name not in page_text
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.report(None)
    other = next(k for k in handlers.predictor.labels if k != handlers.predictor.explain(path).label)
    page_text = " ".join(PdfReader(handlers.report(path, other, "gradcam++", 0.3)).pages[0].extract_text().split())
    assert f'heatmap: Grad-CAM++ of the class "{text.class_name(other)}"' in page_text  # the class and method shown


def test_eigencam_names_no_class(handlers, dataset):
    path = _first_ok(handlers, dataset)
    _, _, note = handlers.reexplain(path, "glioma", "eigencam")
    assert "the same for every class" in note and "for *Glioma*" not in note
    assert len(handlers.all_classes(path, "eigencam")) == 1  # one map, not four copies of it


def test_bad_uploads_give_a_clear_message(handlers, tmp_path):
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.classify(None)
    pdf = tmp_path / "scan.png"
    pdf.write_bytes(b"%PDF-1.4 not an image" * 10)
    with pytest.raises(gr.Error, match="Cannot read this file: not a recognised image"):
        handlers.classify(str(pdf))


def test_photo_is_not_given_a_tumour_label(handlers, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))))
    label, *_, note, _, _, shown = handlers.classify(str(path))
    assert label == shown == "Not a brain MRI slice" and "Not read: this page gives no class" in note


def test_batch_table_and_csv(handlers, dataset, tmp_path):
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    paths = [str(p) for p in sorted((dataset / "Testing" / "meningioma").iterdir())[:2]] + [str(bad)]
    table, download = handlers.classify_batch(paths)
    rows = table.values.tolist()
    assert len(rows) == 3 and rows[2][1] == "error" and "empty" in rows[2][-1]
    with open(download["value"]) as handle:
        saved = list(csv.reader(handle))
    assert saved[0] == ["file", "class", *CLASSES, "note"] and len(saved) == 4
    # the table shows percentages as Classify does; the CSV keeps the probabilities, as the API gives them
    assert all(str(cell).endswith("%") for cell in rows[0][2:6])
    assert abs(sum(float(cell) for cell in saved[1][2:6]) - 1) < 1e-3


def test_concurrent_requests_each_get_their_own_answer(handlers, dataset):
    from concurrent.futures import ThreadPoolExecutor

    paths = [str(sorted((dataset / "Testing" / name).iterdir())[0]) for name in CLASSES] * 3
    sequential = [handlers.classify(p)[1] for p in paths]
    with ThreadPoolExecutor(6) as pool:
        parallel = list(pool.map(lambda p: handlers.classify(p)[1], paths))
    for a, b in zip(sequential, parallel):
        assert a != b and np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_all_classes_side_by_side(handlers, dataset):
    path = str(sorted((dataset / "Testing" / "glioma").iterdir())[0])
    shown = handlers.all_classes(path, "gradcam")
    assert [caption.split(":")[0] for _, caption in shown] == [text.class_name(k) for k in CLASSES]
    assert all(Image.open(image).size == Image.open(path).size for image, _ in shown)
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.all_classes(None)


class FakeSelect:
    def __init__(self, index=None, row_value=None):
        self.index, self.row_value = index, row_value


def test_scan_tab_analyses_a_volume_and_moves_through_it(handlers, dataset, tmp_path):
    path = synthetic_scan(tmp_path, dataset)
    table, summary, result = handlers.analyse_scan([str(path)], "axial")
    assert list(table.columns) == ["slice", "status", *CLASSES] and len(table) == 8 == summary["slices"]
    assert summary["kind"] == "NIfTI" and summary["read"] + summary["skipped"] == 8
    for row, one in zip(table.values.tolist(), result.slices):
        if not one.skipped:  # the same answer as the slice on its own
            assert row[2:] == [
                round(v, 4) for v in handlers.predictor.screen(result.volume.slices[one.index])[0].values()
            ]
    summary_text, slider, strip, suspicious, image, note, key = handlers.scan_page(result, request=FakeRequest("fr"))
    assert "NIfTI" in summary_text and "coupes" in summary_text and slider["maximum"] == 7
    assert "numérotées de 0 à 7" in summary_text  # the numbering said once, as the slider and the tables use it
    names = {"Gliome", "Méningiome", "Pas de tumeur", "Tumeur hypophysaire"}
    assert set(strip["value"]["class"]) <= names and set(strip["color_map"]) == names  # one colour per class
    assert len(set(strip["color_map"].values())) == 4 and all(f"{name}" in key for name in names)  # the legend
    assert all(colour in key for colour in strip["color_map"].values())
    assert list(suspicious.columns)[0] == "coupe" and Image.open(image).size == (64, 64)
    top = summary["most_suspicious"][0]["slice"]
    assert slider["value"] == top and f"Coupe {top} (sur 0–7)" in note
    update, image, note = handlers.jump_from_plot(result, 0.45, True, FakeSelect(index=[2.2, 3.9]))
    assert update["value"] == 3 and "Slice 3 (of 0–7)" in note
    update, image, note = handlers.jump_from_table(result, 0.45, True, FakeSelect(row_value=[5, "x", 0.5, "ok"]))
    assert update["value"] == 5 and "Slice 5 (of 0–7)" in note


def test_scan_tab_refuses_bad_uploads_clearly(handlers, tmp_path):
    with pytest.raises(gr.Error, match="Upload a scan first"):
        handlers.analyse_scan(None)
    notes = tmp_path / "notes.zip"
    import zipfile

    with zipfile.ZipFile(notes, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(gr.Error, match="Cannot read this file: 1 of the 1 files are neither DICOM nor NIfTI"):
        handlers.analyse_scan([str(notes)])


def test_a_new_image_is_classified_and_an_emptied_box_is_not(handlers, dataset):
    """The page classifies on upload and on an example (``classify_new``); Clear gives nothing to answer."""
    path = _first_ok(handlers, dataset)
    assert [str(x) for x in handlers.classify_new(path)[::2]] == [str(x) for x in handlers.classify(path)[::2]]
    assert all(update == gr.skip() for update in handlers.classify_new(None))


def test_refusals_speak_the_pages_language_title_included(handlers, tmp_path):
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not an image")
    for lang, title, words in (("en", "Error", "Cannot read this file"), ("fr", "Erreur", "Impossible de lire")):
        with pytest.raises(gr.Error) as refused:
            handlers.classify(str(text_file), request=FakeRequest(lang))
        assert refused.value.title == title and refused.value.message.startswith(words)
        reason = {"en": "not a recognised image file", "fr": "ce n'est pas un fichier image reconnu"}[lang]
        assert reason in refused.value.message  # the reason too, not only its opening
        with pytest.raises(gr.Error) as refused:
            handlers.analyse_scan(None, request=FakeRequest(lang))
        assert refused.value.title == title
