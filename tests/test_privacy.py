"""Nothing kept: uploads and outputs leave the disk after the cache interval; logs hold no image data."""

import time

import pytest

from helpers import png_bytes, start_app, synthetic_slice

pytestmark = pytest.mark.slow  # trains, serves the app or opens a browser


def test_uploads_are_deleted_and_logs_stay_clean(trained_run, tmp_path, monkeypatch, capfd):
    import numpy as np
    from gradio_client import Client, handle_file

    temp = tmp_path / "gradio-temp"
    app, url = start_app(
        monkeypatch, trained_run / "release", GRADIO_TEMP_DIR=str(temp), BRAINMRI_CACHE_CLEANUP="3,6"
    )  # an upload lives 6-9 s
    upload = tmp_path / "Doe_Jane_scan.png"
    upload.write_bytes(png_bytes(synthetic_slice(0, np.random.default_rng(3), (64, 64))))
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "client-downloads"))
        before = {p for p in temp.rglob("*") if p.is_file()}  # the Model tab's figures, served from the cache
        client.predict(handle_file(str(upload)), api_name="/predict")
        made = {p for p in temp.rglob("*") if p.is_file()} - before
        assert any(p.suffix == ".png" and "brainmri" in p.parts for p in made), "the overlay should be served"

        def uploads():
            return [p for p in temp.rglob("*") if p.is_file() and (p.name == upload.name or p.read_bytes() == data)]

        data = upload.read_bytes()
        assert uploads(), "the upload should be in Gradio's cache while it is being served"
        deadline = time.time() + 40
        while time.time() < deadline and uploads():
            time.sleep(0.5)
        assert uploads() == []
        while time.time() < deadline and {p for p in temp.rglob("*") if p.is_file()} - before:
            time.sleep(0.5)
        left = {p for p in temp.rglob("*") if p.is_file()} - before
        assert left == set(), [(p.name, p.stat().st_size, p.read_bytes()[:60]) for p in left]
        # No flagging, no deep links, no run history (the page's own config, as the browser gets it)
        import httpx

        config = httpx.get(f"{url}config").json()
        assert config.get("run_history") is False and app.demo.run_history is False
        assert not {"deeplinkbutton"} & {c["type"] for c in config["components"]}
        assert not [d for d in config["dependencies"] if "flag" in str(d.get("api_name") or "").lower()]
    finally:
        app.demo.close()
    logs = capfd.readouterr()
    assert "Doe_Jane" not in logs.out + logs.err
    assert app.demo.analytics_enabled is False
