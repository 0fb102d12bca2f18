"""End to end in a real headless Chromium (Debian's package) driven by Playwright.

Uploads an example, waits for the prediction and the heatmap (at the upload's own size), opens the
side-by-side view, downloads the case report, opens the Model tab and checks its figures load, then
does it again in French; saves screenshots under runs/ci/ (CI artifacts).
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from brainmri import text
from brainmri.ui import page as ui_page
from helpers import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "runs" / "ci"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,  # serves the app and opens a browser
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def server():
    import importlib
    import sys

    sys.modules.pop("app", None)
    os.environ.pop("BRAINMRI_MODEL", None)
    app = importlib.import_module("app")  # the bundled model and its saved evaluation
    args = app.parse_args(["--port", str(free_port())])
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


def _natural_sizes(page, selector="img"):
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.naturalWidth > 0).map(e => [e.naturalWidth, e.naturalHeight])"
    )


def _sizes_once_shown(page, size: list[int], timeout_ms: int = 15_000) -> list[list[int]]:
    """The images' natural sizes once one of ``size`` has loaded (a busy machine decodes late), else as they are."""
    for _ in range(timeout_ms // 250):
        if size in (sizes := _natural_sizes(page)):
            return sizes
        page.wait_for_timeout(250)
    return _natural_sizes(page)


def test_classify_explain_report_and_model_tab(server, browser, tmp_path):
    from pypdf import PdfReader

    url, app = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(locale="en-US", viewport={"width": 1300, "height": 1400}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("button", name="Classify", exact=True).wait_for(timeout=30_000)
    example = sorted(ui_page.EXAMPLES_DIR.glob("glioma-*"))[0]  # a 512 x 512 slice
    page.locator("input[type=file]").first.set_input_files(str(example))
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Classify", exact=True).click()
    page.get_by_text("Heatmap: Grad-CAM for").first.wait_for(timeout=60_000)
    assert page.get_by_text("Glioma").count() > 0  # class names in words
    assert [512, 512] in _sizes_once_shown(page, [512, 512])  # the overlay at the upload's own size
    page.screenshot(path=str(SHOTS / "app-classify.png"), full_page=True)

    page.get_by_role("button", name="All four classes side by side").click()
    page.get_by_text("Pituitary tumour:").first.wait_for(timeout=60_000)
    assert all(page.get_by_text(f"{name}:").count() > 0 for name in ("Glioma", "Meningioma", "No tumour"))

    page.get_by_role("button", name="Report (PDF)").click()
    link = page.locator('a[download^="brainmri-report-"]').first
    link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        link.click()
    pdf = tmp_path / "report.pdf"
    download.value.save_as(pdf)
    reader = PdfReader(pdf)
    assert len(reader.pages) == 1 and "Glioma" in reader.pages[0].extract_text()
    page.screenshot(path=str(SHOTS / "app-report.png"), full_page=True)

    page.get_by_role("tab", name="Model").click()
    page.get_by_text("How far to trust it").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)
    loaded = page.locator("img").evaluate_all("els => els.filter(e => e.naturalWidth > 100).length")
    assert loaded >= 3  # confusion matrix, reliability diagram, risk-coverage curve: in view, not folded away
    page.screenshot(path=str(SHOTS / "app-model.png"), full_page=True)
    page.close()


def test_a_new_image_empties_the_previous_case(server, browser, tmp_path):
    """Upload A, make its heatmap, gallery and report; upload B: nothing of A is left to read or download."""
    url, app = server
    page = browser.new_page(locale="en-US", viewport={"width": 1300, "height": 1400}, accept_downloads=True)
    page.goto(url)
    classify = page.get_by_role("button", name="Classify", exact=True)
    classify.wait_for(timeout=30_000)
    upload = page.locator("input[type=file]").first
    first, second = (sorted(ui_page.EXAMPLES_DIR.glob(f"{kind}-*"))[0] for kind in ("glioma", "notumor"))
    upload.set_input_files(str(first))
    page.wait_for_timeout(1000)
    classify.click()
    page.get_by_text("Heatmap: Grad-CAM for").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="All four classes side by side").click()
    page.get_by_text("Pituitary tumour:").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Report (PDF)").click()
    report = page.locator('a[download^="brainmri-report-"]')
    report.first.wait_for(timeout=60_000)
    first_name = report.first.get_attribute("download")
    assert re.fullmatch(r"brainmri-report-\d{8}-\d{6}\.pdf", first_name)

    page.get_by_role("button", name="Clear").first.click()  # the upload box's ×, as a user swaps the image
    page.wait_for_function("() => !document.querySelector('a[download^=\"brainmri-report-\"]')", timeout=30_000)
    assert page.get_by_text("Heatmap: Grad-CAM for").count() == 0
    page.locator("input[type=file]").first.set_input_files(str(second))  # classified on upload, no click
    page.get_by_text("Heatmap: Grad-CAM for No tumour").first.wait_for(timeout=60_000)  # B's own answer
    assert page.get_by_text("Heatmap: Grad-CAM for Glioma").count() == 0  # A's note is gone
    assert page.get_by_text("Pituitary tumour:").count() == 0  # the gallery
    assert not page.query_selector('a[download^="brainmri-report-"]')  # A's report

    classify.click()  # the button re-runs B's case (with new settings), and B gets its own report
    page.get_by_text("Heatmap: Grad-CAM for").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Report (PDF)").click()
    report.first.wait_for(timeout=60_000)
    with page.expect_download() as download:
        report.first.click()
    pdf = tmp_path / download.value.suggested_filename
    download.value.save_as(pdf)
    from pypdf import PdfReader

    text = PdfReader(pdf).pages[0].extract_text()
    assert pdf.name.startswith("brainmri-report-") and "No tumour" in text
    page.close()


def test_scan_tab_with_a_small_nifti(server, browser, tmp_path):
    import numpy as np
    from PIL import Image

    from helpers import nifti_bytes

    url, app = server
    examples = sorted(ui_page.EXAMPLES_DIR.glob("*"))
    stack = [np.asarray(Image.open(p).convert("L").resize((128, 128))) for p in examples] * 2  # 8 slices
    voxels = np.flip(np.swapaxes(np.stack(stack, axis=-1), 0, 1), axis=(0, 1)).astype(np.float32)
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(nifti_bytes(np.ascontiguousarray(voxels), gz=True))
    page = browser.new_page(locale="en-US", viewport={"width": 1300, "height": 1400})
    page.goto(url)
    page.get_by_role("tab", name="Scan").click()
    page.get_by_role("button", name="Analyse the scan").wait_for(timeout=30_000)
    page.locator('input[type=file][accept*=".nii"]').first.set_input_files(str(scan))  # the Scan tab's
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Analyse the scan").click()
    page.get_by_text("NIfTI").first.wait_for(timeout=60_000)
    note = page.get_by_text(re.compile(r"^Slice \d+ \(of 0–7\)")).first
    note.wait_for(timeout=30_000)
    before = note.inner_text()
    slider = page.locator("input[type=range]:visible").first  # the Scan tab's slice slider
    slider.focus()
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 3, box["y"] + box["height"] / 2)  # to the first slice
    page.wait_for_function(
        "() => [...document.querySelectorAll('p')].some(p => p.innerText.startsWith('Slice 0 (of 0–7)'))",
        timeout=30_000,
    )
    assert before.startswith("Slice") and page.get_by_text(re.compile(r"^Slice 0 \(of 0–7\)")).count() > 0
    number = page.locator("input[type=number]:visible").first  # typing a slice number goes there too
    number.fill("5")
    page.get_by_text(re.compile(r"^Slice 5 \(of 0–7\)")).first.wait_for(timeout=30_000)
    legend = page.locator("span[style*='color:#0072B2']")  # the strip's legend: each class by its colour
    assert legend.count() > 0 and page.get_by_text("Glioma").count() > 0
    page.screenshot(path=str(SHOTS / "app-scan.png"), full_page=True)
    page.close()


def test_french_interface(server, browser):
    url, app = server
    page = browser.new_page(locale="fr-FR", viewport={"width": 1300, "height": 1400})
    page.goto(url)
    page.get_by_role("button", name="Classer", exact=True).wait_for(timeout=30_000)
    assert page.get_by_text("pas un dispositif médical").count() > 0
    example = sorted(ui_page.EXAMPLES_DIR.glob("glioma-*"))[0]
    page.locator("input[type=file]").first.set_input_files(str(example))
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Classer", exact=True).click()
    page.get_by_text("Carte : Grad-CAM pour").first.wait_for(timeout=60_000)
    assert page.get_by_text("Gliome").count() > 0 and page.get_by_text("Tumeur hypophysaire").count() > 0
    page.screenshot(path=str(SHOTS / "app-classify-fr.png"), full_page=True)
    page.get_by_role("tab", name="À propos").click()
    page.get_by_role("heading", name="Les quatre classes").wait_for(timeout=30_000)
    assert page.get_by_text("Lire une carte de chaleur").count() > 0
    page.close()


@pytest.mark.parametrize(
    "locale, words",
    [
        (
            "en-US",
            {"tab": "Teach", "reveal": "Reveal", "case": "Case {n} of", "truth": "The truth:", "done": "revealed"},
        ),
        (
            "fr-FR",
            {"tab": "Enseigner", "reveal": "Révéler", "case": "Cas {n} sur", "truth": "La vérité", "done": "révélés"},
        ),
    ],
)
def test_teach_tab_walks_five_cases(server, browser, locale, words):
    """Five cases as a learner takes them: pick a class, reveal (truth, model, heatmap beside the reader's outline,
    teaching point, score), the next case by the arrow key or the button; back with ← shows the answer kept."""
    from brainmri.ui.teach import load_cases

    url, app = server
    cases = load_cases()
    page = browser.new_page(locale=locale, viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.get_by_role("tab", name=words["tab"]).click()
    reveal = page.get_by_role("button", name=words["reveal"], exact=True)
    reveal.wait_for(timeout=30_000)
    lang = locale[:2]
    for n, case in enumerate(cases[:5], start=1):
        page.get_by_role("heading", name=words["case"].format(n=n)).wait_for(timeout=30_000)
        assert page.get_by_text(words["truth"]).count() == 0  # nothing given away before the answer
        page.get_by_role("radio", name=text.class_name(case.truth, lang), exact=True).check()
        reveal.click()
        page.get_by_text(words["truth"]).first.wait_for(timeout=60_000)
        page.get_by_text(text.t(f"teach.points.{case.id}", lang)[:40]).first.wait_for(timeout=10_000)
        page.wait_for_function(  # the heatmap and the reader's outline, drawn
            "() => [...document.querySelectorAll('.teach img')].filter(i => i.naturalWidth > 100).length >= 3",
            timeout=30_000,
        )
        if n == 3 and lang == "en":
            page.screenshot(path=str(SHOTS / "app-teach.png"), full_page=True)
        if n % 2:
            page.locator("body").press("ArrowRight")  # the keyboard, as in a lecture
        else:
            page.get_by_role("button", name=text.t("page.teach_next", lang)).click()
    page.get_by_role("heading", name=words["case"].format(n=6)).wait_for(timeout=30_000)
    page.locator("body").press("ArrowLeft")
    page.get_by_role("heading", name=words["case"].format(n=5)).wait_for(timeout=30_000)
    page.get_by_text(words["truth"]).first.wait_for(timeout=30_000)  # case 5 comes back revealed
    assert page.get_by_text(words["done"]).count() > 0  # the running score
    page.close()
