"""How high can the pointing game go at a given heatmap grid? The best any heatmap of ``g x g`` cells can do.

pytorch-grad-cam scales a heatmap to the model input bilinearly, and a bilinear interpolation peaks on a cell
centre, so a ``g x g`` heatmap can only point at the ``g * g`` cell centres. A slice can be hit at all only if
one of those pixels lies inside its tumour mask widened by 2 px (the localisation yardstick's rule). This counts
the slices for which one does: an upper bound on the pointing game that no training can pass at that grid.
Masks go through the bundled model's preprocessing; figshare slices of Training and Testing. Run from the
repository root: ``python scripts/pointing_bound.py [RELEASE]``."""

import sys

import numpy as np
from pytorch_grad_cam.utils.image import scale_cam_image

from brainmri import Predictor
from brainmri.data.folders import list_classes, load_folder, split_roots
from brainmri.data.masks import load_masks
from brainmri.evaluation.localisation import widen

release = sys.argv[1] if len(sys.argv) > 1 else "assets/model"
predictor = Predictor.from_pretrained(release, backend="torch")
size = predictor.preprocess.image_size


def reachable_peaks(grid: int) -> np.ndarray:
    """The input pixel where a one-hot ``grid x grid`` heatmap peaks after scaling, one per cell."""
    peaks = []
    for cell in range(grid * grid):
        one_hot = np.zeros((1, grid, grid), np.float32)
        one_hot.flat[cell] = 1.0
        peaks.append(int(scale_cam_image(one_hot, (size, size))[0].argmax()))
    return np.array(peaks)


for split, root in zip(("Training", "Testing"), split_roots("../shared/data/brain-tumor-mri")):
    images = load_folder(root, predictor.preprocess, cache_dir=".cache/brainmri", classes=list_classes(root))
    masks = load_masks(
        images, "../shared/data/brain-tumor-mri-masks", predictor.preprocess, cache_dir=".cache/brainmri"
    )
    keep = np.flatnonzero(masks.annotated & (masks.masks.reshape(len(masks.masks), -1).max(1) > 0))
    inside = widen(masks.masks[keep] > 0, 2).reshape(len(keep), -1)
    share = (masks.masks[keep] > 0).reshape(len(keep), -1).mean(1)
    print(
        f"{split}: {len(keep)} figshare slices with a mask; mask share of the input: median "
        f"{100 * np.median(share):.2f} %, mean {100 * share.mean():.2f} %"
    )
    for grid in (4, 7, 14, 28):
        hit = inside[:, reachable_peaks(grid)].any(1)
        print(f"  {grid:>2} x {grid:<2} heatmap: at most {100 * hit.mean():.1f} % pointing game")
