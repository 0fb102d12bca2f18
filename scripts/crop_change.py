"""How many head-crop boxes change between the threshold crop and the head-region crop, and how each copes with
letters and markers drawn at the edges.

    python scripts/crop_change.py [--data ../shared/data/brain-tumor-mri] [--lgg ../shared/data/tcga-lgg]

Prints, per set, the share of images whose two boxes overlap (intersection over union) under 0.95 and 0.8; then,
on every 60th Testing slice with orientation letters, an arrow and a scale bar drawn at its edges (tests'
``_with_markers``), each crop's box overlap with its own box on the clean slice. Figures only.
"""

from __future__ import annotations

import argparse
import glob
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from brainmri.inference.preprocess import content_box, head_box
from brainmri.io.images import load_grayscale


def iou(a, b) -> float:
    top, bottom, left, right = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    inter = max(0, bottom - top) * max(0, right - left)
    area = lambda box: (box[1] - box[0]) * (box[3] - box[2])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/brain-tumor-mri")
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    args = parser.parse_args()
    sets = {
        "Training": sorted(glob.glob(f"{args.data}/Training/*/*")),
        "Testing": sorted(glob.glob(f"{args.data}/Testing/*/*")),
        "TCGA-LGG": sorted(glob.glob(f"{args.lgg}/*/*_flair.jpg") + glob.glob(f"{args.lgg}/*/*_t1*.jpg")),
    }

    def overlap(path):
        gray = load_grayscale(path)
        return iou(content_box(gray), head_box(gray))

    for name, files in sets.items():
        with ThreadPoolExecutor(2) as pool:
            values = np.array(list(pool.map(overlap, files)))
        print(
            f"{name}: {len(values)} images; boxes overlapping < 0.95: {100 * (values < 0.95).mean():.1f} %, "
            f"< 0.8: {100 * (values < 0.8).mean():.1f} %; mean overlap {values.mean():.3f}"
        )
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_preprocess import _with_markers

    kept = {"threshold": [], "head": []}
    for path in sets["Testing"][::60]:
        gray = load_grayscale(path)
        marked = _with_markers(gray)
        kept["threshold"].append(iou(content_box(gray), content_box(marked)))
        kept["head"].append(iou(head_box(gray), head_box(marked)))
    for name, values in kept.items():
        print(
            f"markers drawn on {len(values)} Testing slices, {name} crop: box overlap with the clean slice's "
            f"mean {np.mean(values):.3f}, worst {np.min(values):.3f}"
        )


if __name__ == "__main__":
    main()
