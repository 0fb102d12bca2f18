#!/usr/bin/env python
"""The README's pictures, in English: the Classify tab after classifying an example, the Scan tab on a whole scan
(one TCGA-LGG patient's FLAIR when ../shared/data is beside the repository, else the examples stacked), the Model
tab, the Teach tab with a case revealed, and a case report page.

    python scripts/screenshots.py [--out assets/screenshots] [--chromium /usr/bin/chromium]

Serves the bundled model on a free loopback port, drives Debian's Chromium with Playwright, and
writes small PNGs (palette-quantised, 900 px wide).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def shrink(source: Path, target: Path, width: int = 900) -> None:
    from PIL import Image

    image = Image.open(source).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def _shot(page, tmp: Path, out: Path, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(tmp / name), full_page=full_page)
    shrink(tmp / name, out / name)


def _scan(tmp: Path) -> Path:
    """A NIfTI volume for the Scan tab: a TCGA-LGG patient's FLAIR scan, or the four examples twice."""
    import numpy as np
    from PIL import Image

    from helpers import nifti_bytes

    lgg = ROOT.parent / "shared" / "data" / "tcga-lgg"
    if lgg.is_dir():
        from brainmri.data.lgg import scan

        slices = scan(lgg, "TCGA_CS_4941_19960909")
    else:
        from brainmri.ui import page

        examples = sorted(page.EXAMPLES_DIR.glob("*"))
        slices = [np.asarray(Image.open(p).convert("L").resize((256, 256))) for p in examples] * 2
    voxels = np.stack([np.flipud(np.fliplr(s)).T for s in slices], axis=-1)  # X x Y x Z, as the slices show it
    path = tmp / "scan.nii.gz"
    path.write_bytes(nifti_bytes(np.ascontiguousarray(voxels), gz=True))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("BRAINMRI_MODEL", None)

    from playwright.sync_api import sync_playwright

    import app
    from brainmri import Predictor
    from brainmri.ui import page
    from brainmri.ui.casereport import ModelFacts, write_case_report
    from helpers import free_port

    example = sorted(page.EXAMPLES_DIR.glob("glioma-*"))[0]
    predictor = Predictor.from_pretrained(page.DEFAULT_MODEL)
    metrics_dir = page.release_metrics_dir(predictor)
    facts = ModelFacts.from_metrics_dir(predictor.config, metrics_dir)
    with tempfile.TemporaryDirectory() as tmp:
        page_png = Path(tmp) / "report.png"
        write_case_report(page_png, predictor.explain(example), facts, "en")
        shrink(page_png, out / "report.png", width=640)

        port = free_port()
        app.launch(app.demo, app.parse_args(["--port", str(port)]), prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=["--headless", "--no-sandbox"])
                page = browser.new_page(locale="en-US", viewport={"width": 1300, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_role("button", name="Classify", exact=True).wait_for(timeout=30_000)
                page.locator("input[type=file]").first.set_input_files(str(example))  # classified on upload
                page.get_by_text("Heatmap: Grad-CAM for").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                _shot(page, Path(tmp), out, "classify.png")

                page.get_by_role("tab", name="Scan").click()
                page.locator('input[type=file][accept*=".nii"]').first.set_input_files(str(_scan(Path(tmp))))
                page.wait_for_timeout(1000)
                page.get_by_role("button", name="Analyse the scan").click()
                page.get_by_text("NIfTI").first.wait_for(timeout=120_000)
                page.wait_for_timeout(3000)
                _shot(page, Path(tmp), out, "scan.png")

                page.get_by_role("tab", name="Model").click()
                page.get_by_text("How far to trust it").wait_for(timeout=30_000)
                page.wait_for_timeout(2500)
                _shot(page, Path(tmp), out, "model.png")

                page.get_by_role("tab", name="Teach").click()
                page.get_by_role("heading", name="Case 1 of").wait_for(timeout=30_000)
                page.get_by_role("radio", name="Meningioma", exact=True).check()
                page.get_by_role("button", name="Reveal", exact=True).click()
                page.get_by_text("To remember:").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                _shot(page, Path(tmp), out, "teach.png", full_page=True)
                browser.close()
        finally:
            app.demo.close()
    for name in ("classify.png", "scan.png", "model.png", "teach.png", "report.png"):
        print(out / name, f"{(out / name).stat().st_size / 1024:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
