"""The Gradio app: handlers without a server, then the real server through gradio_client."""
import csv
import importlib
import json
import re
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from brainmri import wording
from helpers import CLASSES, free_port, png_bytes


@pytest.fixture(scope="module")
def app_module(trained_run, monkeypatch_module, tmp_path_factory):
    monkeypatch_module.setenv("BRAINMRI_MODEL", str(trained_run / "release"))
    monkeypatch_module.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))  # outputs land here
    sys.modules.pop("app", None)
    return importlib.import_module("app")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def handlers(app_module):
    return app_module.Handlers(app_module.Predictor.from_pretrained(app_module.os.environ["BRAINMRI_MODEL"]))


class FakeRequest:
    """What a handler reads of gr.Request: the browser's headers."""

    def __init__(self, accept_language: str):
        self.headers = {"accept-language": accept_language}


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
    assert list(shown) == [wording.class_name(k, "en") for k in CLASSES] == ["Glioma", "Meningioma", "No tumour",
                                                                            "Pituitary tumour"]
    assert list(shown.values()) == list(label.values())
    assert Path(overlay).parent == Path(image).parent == Path(overlay2).parent  # files in Gradio's cache
    width, height = Image.open(path).size
    assert np.asarray(Image.open(overlay)).shape == (height, width, 3)  # on the slice at its own resolution
    assert np.asarray(Image.open(overlay2)).shape == (32, 32, 3) and np.asarray(Image.open(image)).shape == (32, 32)
    assert wording.class_name(max(label, key=label.get), "en") in note
    again = handlers.classify(path)  # the same answer again is a new file: no file is ever rewritten
    assert again[1] != overlay and Image.open(again[1]).tobytes() == Image.open(overlay).tobytes()


def test_reexplain_follows_class_and_method(handlers, dataset):
    path = str(next((dataset / "Testing" / "pituitary").iterdir()))
    overlay, _, note = handlers.reexplain(path, "notumor", "eigencam")
    assert Image.open(overlay).size == Image.open(path).size
    verdict = handlers.predictor.explain(path).verdict
    expected = "No tumour label shown" if verdict.status == "not_mri" else "Heatmap: EigenCAM for *No tumour*"
    assert expected in note


def test_opacity_and_outline_redraw_the_overlay(handlers, dataset):
    path = _first_ok(handlers, dataset)
    slice_ = np.asarray(Image.open(path).convert("L"))
    bare, _, _ = handlers.reexplain(path, "predicted", "gradcam", 0.0, False)
    np.testing.assert_array_equal(np.asarray(Image.open(bare)), np.repeat(slice_[..., None], 3, axis=2))
    outlined = np.asarray(Image.open(handlers.reexplain(path, "predicted", "gradcam", 0.0, True)[0]))
    assert (outlined != np.asarray(Image.open(bare))).any(axis=2).mean() < 0.2  # a thin outline, nothing else
    strong = np.asarray(Image.open(handlers.reexplain(path, "predicted", "gradcam", 1.0, False)[0]))
    assert (strong != np.asarray(Image.open(bare))).any()


def test_french_page_names_classes_in_words(handlers, dataset, tmp_path):
    path = _first_ok(handlers, dataset)
    french = FakeRequest("fr-FR,fr;q=0.9,en;q=0.8")
    label, _, note, _, _, shown = handlers.classify(path, request=french)
    assert list(label) == CLASSES  # the API keeps its keys whatever the browser's language
    assert list(shown) == ["Gliome", "Méningiome", "Pas de tumeur", "Tumeur hypophysaire"]
    assert wording.class_name(max(label, key=label.get), "fr") in note
    captions = [caption for _, caption in handlers.all_classes(path, request=french)]
    assert [c.split(":")[0] for c in captions] == list(shown)
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))))
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
        text = " ".join(reader.pages[0].extract_text().split())
        label = handlers.predictor.explain(path).label
        assert len(reader.pages) == 1 and wording.class_name(label, lang) in text
        assert Path(path).name not in text
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.report(None)


def test_model_tab_shows_only_the_served_release_evaluation(app_module, trained_run, tmp_path):
    import shutil

    def markdowns(demo):
        return " ".join(str(c["props"].get("value")) for c in demo.config["components"] if c["type"] == "markdown")

    predictor = app_module.Predictor.from_pretrained(trained_run / "release")
    # assets/metrics was measured on the bundled weights, not on this release: not shown
    shown = markdowns(app_module.build_demo(predictor, app_module.METRICS_DIR))
    assert "no_evaluation" in shown and "Testing (full)" not in shown
    # the release's own evaluation (metrics.json names its weights) is shown
    own = shutil.copytree(trained_run / "evaluation", tmp_path / "metrics")  # `train.py train` evaluated it
    shown = markdowns(app_module.build_demo(predictor, own))
    assert "Testing (full)" in shown and predictor.config["weights_sha256"][:12] in shown
    assert "contrast inverted" not in shown  # no robustness table saved for it: no row
    (own / "robustness.json").write_text(json.dumps({"contrast inversion (T2-like)": {"accuracy": 0.123}}))
    assert "| accuracy, contrast inverted (T2-like stand-in) | 12.30 % |" in markdowns(app_module.build_demo(predictor, own))


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
    assert label == shown == "Not a brain MRI slice" and "No tumour label" in note


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


def test_privacy_settings(app_module):
    demo = app_module.demo
    assert demo.analytics_enabled is False
    assert demo.delete_cache == app_module.CACHE_CLEANUP
    args = app_module.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False
    api = {d["api_name"] for d in demo.config["dependencies"] if d.get("api_name")}
    assert {"predict", "predict_batch", "explain_all", "report", "predict_volume"} <= api


def test_backend_switch(app_module, monkeypatch):
    assert app_module.parse_args([]).backend == "auto"
    assert app_module.parse_args(["--backend", "torch"]).backend == "torch"
    monkeypatch.setenv("BRAINMRI_BACKEND", "torch")
    assert app_module.parse_args([]).backend == "torch"
    with pytest.raises(SystemExit):
        app_module.parse_args(["--backend", "tensorrt"])
    demo = app_module.load(app_module.os.environ["BRAINMRI_MODEL"], "torch")
    texts = [c["props"].get("value") for c in demo.config["components"] if c["type"] == "markdown"]
    assert any(t and "runtime in this app: **torch**" in t for t in texts)



def test_server_predict_endpoint_with_gradio_client(app_module, dataset, tmp_path):
    from gradio_client import Client, handle_file

    args = app_module.parse_args(["--port", str(free_port())])
    app_module.launch(app_module.demo, args, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
        good = str(next((dataset / "Testing" / "notumor").iterdir()))
        result = client.predict(handle_file(good), api_name="/predict")
        label, overlay = result[0], result[1]
        expected = app_module._label_output(app_module.Predictor.from_pretrained(
            app_module.os.environ["BRAINMRI_MODEL"]).explain(good))
        if isinstance(expected, dict):  # the same answer as in process, with the English keys
            assert {c["label"] for c in label["confidences"]} == set(CLASSES)
            assert label["label"] == max(expected, key=expected.get)
        else:
            assert label["label"] == expected == "Not a brain MRI slice"
        assert Image.open(overlay).size == Image.open(good).size
        bad = tmp_path / "truncated.png"
        bad.write_bytes(png_bytes(Image.new("L", (64, 64), 9))[:40])
        with pytest.raises(Exception, match="Cannot read this file"):
            client.predict(handle_file(str(bad)), api_name="/predict")
        again = client.predict(handle_file(good), api_name="/predict")
        assert again[0] == label  # the server still answers, and answers the same
        from benchmarks.appserver import PageClient

        page = PageClient(f"http://127.0.0.1:{args.port}/")  # the benchmark's client: the page's own protocol
        assert page.predict(good)[0] == label
        with pytest.raises(RuntimeError, match="Cannot read this file"):
            page.predict(bad)
        page.close()
        table, summary = client.predict([handle_file(str(_scan(tmp_path, dataset)))], "axial", api_name="/predict_volume")
        assert table["headers"] == ["slice", "status", *CLASSES] and len(table["data"]) == 8
        assert summary["slices"] == 8 and summary["kind"] == "NIfTI"
        pdf = client.predict(handle_file(good), api_name="/report")
        assert Path(pdf).read_bytes().startswith(b"%PDF") and Path(pdf).suffix == ".pdf"
    finally:
        app_module.demo.close()


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
    assert [caption.split(":")[0] for _, caption in shown] == [wording.class_name(k) for k in CLASSES]
    assert all(Image.open(image).size == Image.open(path).size for image, _ in shown)
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.all_classes(None)


def _scan(tmp_path, dataset) -> Path:
    """A small NIfTI volume: eight synthetic Testing slices (64 px) stacked axially."""
    from helpers import nifti_bytes

    files = sorted((dataset / "Testing").rglob("*.png"))[:8]
    stack = np.stack([np.asarray(Image.open(f).convert("L").resize((64, 64))) for f in files], axis=-1)
    voxels = np.flip(np.swapaxes(stack, 0, 1), axis=(0, 1)).astype(np.float32)  # X x Y x Z as viewers store it
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(nifti_bytes(np.ascontiguousarray(voxels), gz=True))
    return path


class FakeSelect:
    def __init__(self, index=None, row_value=None):
        self.index, self.row_value = index, row_value


def test_scan_tab_analyses_a_volume_and_moves_through_it(handlers, dataset, tmp_path):
    path = _scan(tmp_path, dataset)
    table, summary, result = handlers.analyse_scan([str(path)], "axial")
    assert list(table.columns) == ["slice", "status", *CLASSES] and len(table) == 8 == summary["slices"]
    assert summary["kind"] == "NIfTI" and summary["read"] + summary["skipped"] == 8
    for row, one in zip(table.values.tolist(), result.slices):
        if not one.skipped:  # the same answer as the slice on its own
            assert row[2:] == [round(v, 4) for v in handlers.predictor.screen(result.volume.slices[one.index])[0].values()]
    text, slider, strip, suspicious, image, note = handlers.scan_page(result, request=FakeRequest("fr"))
    assert "NIfTI" in text and "coupes" in text and slider["maximum"] == 7
    assert set(strip["class"]) <= {"Gliome", "Méningiome", "Pas de tumeur", "Tumeur hypophysaire"}
    assert list(suspicious.columns)[0] == "coupe" and Image.open(image).size == (64, 64)
    top = summary["most_suspicious"][0]["slice"]
    assert slider["value"] == top and f"Coupe {top} sur 7" in note
    update, image, note = handlers.jump_from_plot(result, 0.45, True, FakeSelect(index=[2.2, 3.9]))
    assert update["value"] == 3 and "Slice 3 of 7" in note
    update, image, note = handlers.jump_from_table(result, 0.45, True, FakeSelect(row_value=[5, "x", 0.5, "ok"]))
    assert update["value"] == 5 and "Slice 5 of 7" in note


def test_scan_tab_refuses_bad_uploads_clearly(handlers, tmp_path):
    with pytest.raises(gr.Error, match="Upload a scan first"):
        handlers.analyse_scan(None)
    notes = tmp_path / "notes.zip"
    import zipfile
    with zipfile.ZipFile(notes, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(gr.Error, match="Cannot read this file: 1 of the 1 files are neither DICOM nor NIfTI"):
        handlers.analyse_scan([str(notes)])
