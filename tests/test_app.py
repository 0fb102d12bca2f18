"""The app: app.py's options, the page built for a release (its Model tab), and the real server through
gradio_client and the page's own protocol."""

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from brainmri import Predictor
from brainmri.ui import page
from brainmri.ui.handlers import _label_output
from helpers import CLASSES, free_port, png_bytes, synthetic_scan

pytestmark = pytest.mark.slow  # trains, serves the app or opens a browser


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


def test_model_tab_shows_only_the_served_release_evaluation(app_module, trained_run, tmp_path):
    import shutil

    def markdowns(demo):
        return " ".join(str(c["props"].get("value")) for c in demo.config["components"] if c["type"] == "markdown")

    predictor = Predictor.from_pretrained(trained_run / "release")
    # assets/metrics was measured on the bundled weights, not on this release: not shown
    shown = markdowns(page.build_demo(predictor, page.METRICS_DIR))
    assert "no_evaluation" in shown and "Testing (full)" not in shown
    # the release's own evaluation (metrics.json names its weights) is shown
    own = shutil.copytree(trained_run / "evaluation", tmp_path / "metrics")  # `train.py train` evaluated it
    shown = markdowns(page.build_demo(predictor, own))
    assert "Testing (full)" in shown and predictor.config["weights_sha256"][:12] in shown
    assert "contrast inverted" not in shown  # no robustness table saved for it: no row
    (own / "robustness.json").write_text(json.dumps({"contrast inversion (T2-like)": {"accuracy": 0.123}}))
    assert "| accuracy, contrast inverted (T2-like stand-in) | 12.30 % |" in markdowns(page.build_demo(predictor, own))


def test_privacy_settings(app_module):
    demo = app_module.demo
    assert demo.analytics_enabled is False
    assert demo.delete_cache == page.cache_cleanup()
    assert app_module.parse_args([]).sessions == 64  # page views kept in memory (Gradio's own default: 10,000)
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
    demo = app_module.load(os.environ["BRAINMRI_MODEL"], "torch")
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
        expected = _label_output(Predictor.from_pretrained(os.environ["BRAINMRI_MODEL"]).explain(good))
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
        table, summary = client.predict(
            [handle_file(str(synthetic_scan(tmp_path, dataset)))], "axial", api_name="/predict_volume"
        )
        assert table["headers"] == ["slice", "status", *CLASSES] and len(table["data"]) == 8
        assert summary["slices"] == 8 and summary["kind"] == "NIfTI"
        pdf = client.predict(handle_file(good), api_name="/report")
        assert Path(pdf).read_bytes().startswith(b"%PDF") and Path(pdf).suffix == ".pdf"
    finally:
        app_module.demo.close()
