"""What :meth:`~brainmri.inference.predictor.Predictor.explain` returns: the answer, its verdict and its heatmap,
at the model's input and drawn on the slice at its own resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainmri.inference.explain import HEATMAP_OPACITY, overlay
from brainmri.inference.preprocess import Preprocess
from brainmri.inference.verdict import Verdict


@dataclass
class Explanation:
    probabilities: dict[str, float]
    target: str  # the class the heatmap explains
    heatmap: np.ndarray  # H x W float32 in [0, 1], at the model's input size
    overlay: np.ndarray  # H x W x 3 uint8, drawn on `image`
    image: np.ndarray  # H x W uint8: exactly what the model saw (before normalisation)
    method: str

    verdict: Verdict | None = None
    # on the uploaded slice at its own resolution (long side capped at DISPLAY_MAX), when explained from a file
    heatmap_original: np.ndarray | None = None  # h x w float32 in [0, 1]; 0 outside the part the model saw
    overlay_original: np.ndarray | None = None  # h x w x 3 uint8, drawn with the defaults of `draw`
    box: tuple[int, int, int, int] | None = None  # the part of the slice the model saw (top, bottom, left, right)
    original: np.ndarray | None = None  # h x w uint8: the slice itself, at the same display size

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def draw(self, opacity: float = HEATMAP_OPACITY, outline: bool = True) -> np.ndarray:
        """The heatmap over the original slice with the given opacity (0: the slice alone, 1: the heatmap alone),
        and the part of the slice the model saw outlined when ``outline``."""
        if self.original is None:
            raise ValueError("this explanation has no original slice (explained from a prepared image)")
        return draw_on_original(self.original, self.heatmap_original, self.box, opacity, outline)


DISPLAY_MAX = 1024  # long side of the original-resolution overlay
OUTLINE_RGB = (0, 200, 255)  # the crop-box outline


def draw_on_original(
    gray: np.ndarray, heatmap: np.ndarray, box, opacity: float = HEATMAP_OPACITY, outline: bool = True
) -> np.ndarray:
    """``heatmap`` (same size as ``gray``) coloured over ``gray`` inside ``box`` only (outside it the slice is
    shown as it is: the model did not see it), with the box's edge drawn 1 px wide (2 px above 512 px) when
    ``outline``."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within [0, 1], got {opacity}")
    drawn = np.repeat(gray[..., None], 3, axis=2)
    top, bottom, left, right = box
    if opacity > 0:
        drawn[top:bottom, left:right] = overlay(gray[top:bottom, left:right], heatmap[top:bottom, left:right], opacity)
    if outline:
        width = 2 if max(gray.shape) > 512 else 1
        bottom, right = max(bottom, top + width), max(right, left + width)
        for rows, cols in (
            ((top, top + width), (left, right)),
            ((bottom - width, bottom), (left, right)),
            ((top, bottom), (left, left + width)),
            ((top, bottom), (right - width, right)),
        ):
            drawn[rows[0] : rows[1], cols[0] : cols[1]] = OUTLINE_RGB
    return drawn


def on_original(preprocess: Preprocess, gray: np.ndarray, heatmap: np.ndarray, box=None):
    """The heatmap mapped back onto ``gray`` (downscaled to ``DISPLAY_MAX`` on its long side when larger), the
    crop box in those coordinates and the (downscaled) slice; ``box``: ``preprocess.box(gray)`` when known."""
    box = preprocess.box(gray) if box is None else box
    full = preprocess.unfit(heatmap, gray.shape, box)
    scale = min(1.0, DISPLAY_MAX / max(gray.shape))
    if scale < 1.0:
        from PIL import Image

        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.BILINEAR))
        full = np.asarray(Image.fromarray(full, mode="F").resize(size, Image.BILINEAR))
        box = tuple(int(round(v * scale)) for v in box)
    return np.clip(full, 0.0, 1.0).astype(np.float32), box, gray


def _attach_original(explanation: "Explanation", preprocess: Preprocess, gray: np.ndarray, box=None) -> None:
    explanation.heatmap_original, explanation.box, explanation.original = on_original(
        preprocess, gray, explanation.heatmap, box
    )
    explanation.overlay_original = explanation.draw()
