"""How the screening does: the verdicts on genuine slices and on generated inputs that are not MRI slices.

The runtime checks live in :mod:`brainmri.inference.verdict`; this module only measures them
(``train.py screening``).
"""

from __future__ import annotations

import numpy as np


def synthetic_outliers(seed: int = 0, size: int = 256) -> dict[str, list]:
    """Inputs that are not brain MRI slices, made here (no downloads): colour and grayscale
    photographs (scikit-learn's two sample photos, cropped), noise, blanks, gradients,
    checkerboards and a page of text."""
    from PIL import Image, ImageDraw
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    out: dict[str, list] = {
        "colour photo": [],
        "grayscale photo": [],
        "noise": [],
        "blank": [],
        "pattern": [],
        "text": [],
    }
    for photo in load_sample_images().images:
        h, w = photo.shape[:2]
        for _ in range(6):
            side = int(rng.integers(min(h, w) // 3, min(h, w)))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[top : top + side, left : left + side]
            out["colour photo"].append(crop)
            out["grayscale photo"].append(np.asarray(Image.fromarray(crop).convert("L")))
    for _ in range(6):
        out["noise"].append(rng.integers(0, 256, (size, size), dtype=np.uint8))
        out["noise"].append((rng.normal(0, 1, (size, size)).cumsum(0).cumsum(1) % 256).astype(np.uint8))
    for value in (0, 255, 128):
        out["blank"].append(np.full((size, size), value, np.uint8))
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    out["pattern"] += [
        np.tile(ramp, (size, 1)),
        np.tile(ramp[:, None], (1, size)),
        ((np.indices((size, size)).sum(0) // 32) % 2 * 255).astype(np.uint8),
    ]
    for lines in range(3):
        page = Image.new("L", (size, size), 255)
        draw = ImageDraw.Draw(page)
        for row in range(4 + lines * 4):
            draw.text((10, 10 + 14 * row), "Lorem ipsum dolor sit amet " * 2, fill=0)
        out["text"].append(np.asarray(page))
    return out


def screening_report(predictor, in_distribution: list, outliers: dict[str, list]) -> dict:
    """How often genuine slices are flagged and how often outliers are caught, per kind."""

    def statuses(images):
        counts = {"ok": 0, "uncertain": 0, "not_mri": 0}
        for image in images:
            counts[predictor.screen(image)[1].status] += 1
        return counts

    report = {"in_distribution": statuses(in_distribution), "outliers": {}}
    for kind, images in outliers.items():
        report["outliers"][kind] = statuses(images)
    caught = sum(c["not_mri"] for c in report["outliers"].values())
    total = sum(sum(c.values()) for c in report["outliers"].values())
    report["outliers_flagged_not_mri"] = caught / max(total, 1)
    report["outliers_given_a_confident_label"] = sum(c["ok"] for c in report["outliers"].values()) / max(total, 1)
    n = sum(report["in_distribution"].values())
    report["in_distribution_flagged_not_mri"] = report["in_distribution"]["not_mri"] / max(n, 1)
    report["in_distribution_uncertain"] = report["in_distribution"]["uncertain"] / max(n, 1)
    return report
