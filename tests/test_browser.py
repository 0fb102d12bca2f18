"""End to end in a real headless Chromium (Debian's package) driven by Playwright.

Uploads an example, waits for the prediction and the heatmap, opens the Model tab, checks its
figures load, checks the French translation, and saves screenshots under runs/ci/ (CI artifacts).
"""
import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "runs" / "ci"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import importlib
    import sys
    sys.modules.pop("app", None)
    os.environ.pop("BRAINMRI_MODEL", None)
    app = importlib.import_module("app")  # the bundled model and its saved evaluation
    args = app.parse_args(["--port", str(_free_port())])
    app.launch(app.demo, args, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{args.port}/", app
    app.demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def test_classify_explain_and_model_tab(server, browser, tmp_path):
    url, app = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(locale="en-US", viewport={"width": 1300, "height": 1000})
    page.goto(url)
    page.get_by_role("button", name="Classify").wait_for(timeout=30_000)
    example = sorted(app.EXAMPLES_DIR.glob("glioma-*"))[0]
    page.locator("input[type=file]").first.set_input_files(str(example))
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Classify").click()
    page.get_by_text("Heatmap: Grad-CAM for").first.wait_for(timeout=60_000)
    assert page.get_by_text("glioma").count() > 0
    slider_images = page.locator("img").evaluate_all("els => els.filter(e => e.naturalWidth > 0).length")
    assert slider_images >= 2
    page.screenshot(path=str(SHOTS / "app-classify.png"), full_page=True)

    page.set_viewport_size({"width": 1300, "height": 4000})  # figures load lazily, when in view
    page.get_by_role("tab", name="Model").click()
    page.get_by_text("Headline metrics").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)
    loaded = page.locator("img").evaluate_all("els => els.filter(e => e.naturalWidth > 100).length")
    assert loaded >= 7  # confusion x3, ROC, reliability, curves, gallery
    page.screenshot(path=str(SHOTS / "app-model.png"), full_page=True)
    page.close()


def test_french_interface(server, browser):
    url, _ = server
    page = browser.new_page(locale="fr-FR")
    page.goto(url)
    page.get_by_role("button", name="Classer").wait_for(timeout=30_000)
    assert page.get_by_text("pas un dispositif médical").count() > 0
    page.close()
