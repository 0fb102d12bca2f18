"""The one preprocessing path: grayscale array → the exact pixels the model sees.

Shortcut guard. In the Kaggle dataset image size, aspect ratio and colour mode
depend on the class (most "notumor" slices come from a different source than
the tumour slices). A plain resize would squash non-square images differently
per class, and RGB/palette files would keep a tint. So every image is:

1. converted to one grayscale channel (colour mode gone, see ``imageio``),
2. cropped to the head's bounding box (``content_crop``; the margins and framing
   of the original file gone: without it, the number of black rows and columns
   in the model input predicts the class far above chance, see ``audit.shortcut_strength``
   and docs/guide/dataset.md),
3. padded to a square on black, the scan's own background (aspect ratio gone),
4. resized to the model's input size (absolute size gone),
5. where the release asks for it (``intensity: head``), scaled so that the inside of the head reaches the
   same brightness on every slice (a scanner's or an export's overall level gone, see :func:`head_level`),

then replicated to three channels and normalised with the release folder's
``pretrained_cfg`` mean/std. Geometry and normalisation come from timm's
``resolve_model_data_config`` / ``create_transform``, never from constants here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config


def content_box(gray: np.ndarray, margin: float = 0.04) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the head (pixels brighter than 10 % of the 99th percentile),
    with a small margin; the whole image when there is no head-sized content."""
    height, width = gray.shape[:2]
    whole = (0, height, 0, width)
    if gray.size == 0:
        return whole
    level = np.percentile(gray, 99)
    if level <= 0:
        return whole
    mask = gray > 0.1 * level
    rows = np.flatnonzero(mask.mean(axis=1) > 0.01)
    cols = np.flatnonzero(mask.mean(axis=0) > 0.01)
    if len(rows) == 0 or len(cols) == 0:
        return whole
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) < 0.25 * height and (right - left) < 0.25 * width:
        return whole  # a speck, not a head: leave the image as it is
    pad = int(round(margin * max(bottom - top, right - left)))
    return int(max(0, top - pad)), int(min(height, bottom + pad)), int(max(0, left - pad)), int(min(width, right + pad))


REACH = 0.02  # how far from the head's core (share of the image's side) a bright region may start and still count


def _open_square(mask: np.ndarray, side: int) -> np.ndarray:
    """The binary opening of ``mask`` by a ``side`` x ``side`` square, nothing outside the image (as
    ``scipy.ndimage.binary_opening`` with a 3x3 square, ``(side - 1) / 2`` iterations and its default border; the
    same pixels, in OpenCV's separable erosion and dilation)."""
    import cv2

    kernel = np.ones((side, side), np.uint8)
    eroded = cv2.erode(mask.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.dilate(eroded, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def head_box(gray: np.ndarray, margin: float = 0.04) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the head itself, with a small margin: the bright pixels (above 10 % of
    the 99th percentile, as in :func:`content_box`) of every connected region that comes within :data:`REACH` of
    the head's core, the largest region left after an opening that cuts strokes under about 2 % of the image's
    side. The scalp around the core is kept (thin, but next to it); letters, arrows, rulers and text at the
    edges lie further out and no longer widen the box as they do in :func:`content_box`. The whole image when
    there is no head-sized content."""
    import cv2
    from scipy import ndimage

    height, width = gray.shape[:2]
    whole = (0, height, 0, width)
    level = np.percentile(gray, 99) if gray.size else 0
    if level <= 0:
        return whole
    bright = np.ascontiguousarray(gray > 0.1 * level)
    radius = max(1, round(0.01 * max(height, width)))
    core, count = ndimage.label(_open_square(bright, 2 * radius + 1))
    if not count:
        return content_box(gray, margin)  # nothing survives the opening (a thin drawing): the plain threshold
    core = core == 1 + np.bincount(core.ravel())[1:].argmax()
    # the exact Euclidean distance to the core, as scipy's distance_transform_edt gives it, several times faster
    distance = cv2.distanceTransform((~core).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = distance <= REACH * max(height, width)
    bright = _open_square(bright, 3)  # noise bridges between regions cut
    # the same regions as ndimage.label's (4-connected) in a few times less time; only which pixels share a region
    # matters here, not how the regions are numbered
    count, regions = cv2.connectedComponents(bright.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    wanted = np.zeros(count, bool)
    wanted[regions[near & bright]] = True
    keep = wanted[regions]
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) < 0.25 * height and (right - left) < 0.25 * width:
        return whole  # a speck, not a head: leave the image as it is
    pad = int(round(margin * max(bottom - top, right - left)))
    return int(max(0, top - pad)), int(min(height, bottom + pad)), int(max(0, left - pad)), int(min(width, right + pad))


# How the head is found before cropping (a release's config.json "preprocessing": "crop"; "threshold" where absent,
# the crop every release before the second source was trained with).
CROPS = {"threshold": content_box, "head": head_box}


HEAD_LEVEL = 230  # where ``intensity: head`` puts the 99th percentile of the head's inside (of 255)


def head_level(fitted: np.ndarray) -> np.ndarray:
    """A model input (uint8 square) scaled by one factor so that the 99th percentile of the inside of its head
    (the head without its rim of scalp and skull, as the T2 check sees it) is :data:`HEAD_LEVEL`; black stays
    black, what is brighter saturates. Unchanged when no head is found. A linear scale, so the tissue contrasts
    (a lesion against the brain around it) keep their ratio; only the slice's overall level goes."""
    from brainmri.inference.sequence_check import head_and_interior

    g = np.asarray(fitted, dtype=np.float32)
    _, interior = head_and_interior(g)
    if not interior.any():
        return np.asarray(fitted, dtype=np.uint8)
    level = max(float(np.percentile(g[interior], 99)), 1.0)
    return np.clip(np.rint(g * (HEAD_LEVEL / level)), 0, 255).astype(np.uint8)


# What happens to the intensities after the geometry (a release's config.json "preprocessing": "intensity"; "none"
# where absent, as every release before it was trained).
INTENSITIES = {"none": None, "head": head_level}


def crop_to_content(gray: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """Crop to the bounding box of the head, so the framing of the original file does not reach the model."""
    top, bottom, left, right = content_box(gray, margin)
    return gray[top:bottom, left:right]


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    """Centre ``gray`` on a black square canvas whose side is its longer side."""
    height, width = gray.shape
    side = max(height, width)
    if height == width:
        return gray
    canvas = np.zeros((side, side), dtype=gray.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = gray
    return canvas


@dataclass(frozen=True)
class Preprocess:
    """Geometry and normalisation resolved from a model's ``pretrained_cfg``."""

    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_mode: str = "center"
    content_crop: bool = False  # crop to the head first (config.json "preprocessing")
    crop: str = "threshold"  # how the head is found (:data:`CROPS`)
    intensity: str = "none"  # what is done to the intensities after the geometry (:data:`INTENSITIES`)

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"unknown head crop {self.crop!r}; choose one of {sorted(CROPS)}")
        if self.intensity not in INTENSITIES:
            raise ValueError(f"unknown intensity step {self.intensity!r}; choose one of {sorted(INTENSITIES)}")

    @classmethod
    def from_config(
        cls,
        pretrained_cfg: dict[str, Any],
        content_crop: bool = False,
        crop: str = "threshold",
        intensity: str = "none",
    ) -> "Preprocess":
        cfg = resolve_data_config(pretrained_cfg=pretrained_cfg, use_test_size=True)
        return cls(
            input_size=tuple(cfg["input_size"]),
            interpolation=cfg["interpolation"],
            crop_pct=float(cfg["crop_pct"]),
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            crop_mode=cfg.get("crop_mode", "center"),
            content_crop=content_crop,
            crop=crop,
            intensity=intensity,
        )

    @classmethod
    def from_model(cls, model: torch.nn.Module, content_crop: bool = False, crop: str = "threshold") -> "Preprocess":
        return cls.from_config(model.pretrained_cfg, content_crop, crop)

    @classmethod
    def from_release_config(cls, config: dict[str, Any]) -> "Preprocess":
        """From a release folder's config.json: timm's pretrained_cfg plus our "preprocessing" keys."""
        steps = config.get("preprocessing", {})
        return cls.from_config(
            config["pretrained_cfg"],
            content_crop=bool(steps.get("content_crop", False)),
            crop=steps.get("crop", "threshold"),
            intensity=steps.get("intensity", "none"),
        )

    def release_steps(self) -> dict[str, Any]:
        """The "preprocessing" entry of a release's config.json that rebuilds this preprocessing."""
        steps = {"grayscale": True, "content_crop": self.content_crop, "crop": self.crop, "pad_to_square": True}
        if self.intensity != "none":  # absent from the releases trained before the step existed
            steps["intensity"] = self.intensity
        return steps

    @property
    def image_size(self) -> int:
        return int(self.input_size[-1])

    @cached_property
    def _geometry(self):
        """timm's eval transform without its tensor conversion: Resize + CenterCrop on PIL."""
        transform = create_transform(
            input_size=self.input_size,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
            mean=self.mean,
            std=self.std,
            is_training=False,
        )
        return [t for t in transform.transforms if "Tensor" not in type(t).__name__ and type(t).__name__ != "Normalize"]

    def fit(self, gray: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Grayscale ``H x W`` uint8 → square uint8 at the model's input size (what the model sees); ``box``:
        :meth:`box` of ``gray`` when the caller has it already."""
        fitted = self._fit(gray, self.box(gray) if box is None else box)
        step = INTENSITIES[self.intensity]
        return fitted if step is None else step(fitted)

    def box(self, gray: np.ndarray) -> tuple[int, int, int, int]:
        """The part of ``gray`` the model sees, ``(top, bottom, left, right)``, before padding and resizing."""
        return CROPS[self.crop](gray) if self.content_crop else (0, gray.shape[0], 0, gray.shape[1])

    def fit_mask(self, gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A mask aligned with ``gray`` (same size, >0 inside) through exactly the geometry ``gray`` goes
        through in :meth:`fit`: the same crop box, padding and resize; uint8, 255 inside, 0 outside."""
        if mask.shape[:2] != gray.shape[:2]:
            raise ValueError(f"mask of size {mask.shape[:2]} for an image of size {gray.shape[:2]}")
        resized = self._fit((mask > 0).astype(np.uint8) * 255, self.box(gray))
        return np.where(resized >= 128, 255, 0).astype(np.uint8)

    def unfit(self, values: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
        """A map at the model's input (``S x S`` floats, e.g. a heatmap) back onto the original image of
        ``shape`` (H, W): undo the resize (and centre crop), the padding and the crop box; 0 outside the box."""
        import math

        size = self.image_size
        scale = math.floor(size / self.crop_pct) if self.crop_pct < 1 else size
        canvas = np.zeros((scale, scale), np.float32)
        offset = int(round((scale - size) / 2.0))
        canvas[offset : offset + size, offset : offset + size] = values
        top, bottom, left, right = box
        height, width = bottom - top, right - left
        side = max(height, width)
        square = np.asarray(Image.fromarray(canvas, mode="F").resize((side, side), Image.BILINEAR))
        pad_top, pad_left = (side - height) // 2, (side - width) // 2
        out = np.zeros(shape, np.float32)
        out[top:bottom, left:right] = square[pad_top : pad_top + height, pad_left : pad_left + width]
        return out

    def _fit(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        top, bottom, left, right = box
        image = Image.fromarray(pad_to_square(np.ascontiguousarray(gray[top:bottom, left:right])))
        for step in self._geometry:
            image = step(image)
        fitted = np.asarray(image, dtype=np.uint8)
        if fitted.shape != tuple(self.input_size[1:]):
            raise ValueError(f"preprocessing produced {fitted.shape}, expected {self.input_size[1:]}")
        return fitted

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``B x 1 x H x W`` (uint8, or float in [0, 1]) → ``B x C x H x W`` float, normalised."""
        if batch.dtype == torch.uint8:
            batch = batch.float().div_(255)
        channels = self.input_size[0]
        mean = torch.tensor(self.mean, device=batch.device, dtype=batch.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=batch.device, dtype=batch.dtype).view(1, -1, 1, 1)
        return (batch.expand(-1, channels, -1, -1) - mean) / std

    def to_tensor(self, fitted: list[np.ndarray] | np.ndarray) -> torch.Tensor:
        """Fitted uint8 image(s) → normalised model input batch."""
        array = np.stack(fitted) if isinstance(fitted, list) else np.asarray(fitted)
        if array.ndim == 2:
            array = array[None]
        return self.normalize(torch.from_numpy(np.array(array, dtype=np.uint8)).unsqueeze(1))


def gamma_shift(gray: np.ndarray, value: float) -> np.ndarray:
    """A uint8 slice as a brighter (``value`` < 1) or darker (> 1) export would store it."""
    return np.clip(255.0 * (gray / 255.0) ** value, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class GammaFraming(Preprocess):
    """:class:`Preprocess` with the crop box it would pick for the slice after a gamma change, applied to the
    unchanged slice.

    The content crop thresholds the head at a tenth of the bright end, so a brighter or darker export of the
    same slice is framed differently (under gamma 0.6, 457 of 572 validation slices; docs/record/decisions.md).
    Training shows the model that framing through copies of the training slices cached with this
    preprocessing (``--framing-prob``); their intensities stay the slice's own."""

    box_gamma: float = 1.0

    @classmethod
    def of(cls, preprocess: Preprocess, box_gamma: float) -> "GammaFraming":
        return cls(**{f.name: getattr(preprocess, f.name) for f in fields(Preprocess)}, box_gamma=box_gamma)

    def box(self, gray: np.ndarray) -> tuple[int, int, int, int]:
        if not self.content_crop:
            return super().box(gray)
        return CROPS[self.crop](gamma_shift(gray, self.box_gamma))


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = kernel / kernel.sum()
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    return torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1)
    )


# Test-time views of a B x 1 x H x W batch in [0, 1]: the changes another scanner, viewer or export makes.
TEST_TIME_VIEWS = {
    "hflip": lambda x: x.flip(-1),
    "gamma 0.7": lambda x: x.clamp_min(0).pow(0.7),
    "gamma 1.4": lambda x: x.clamp_min(0).pow(1.4),
    "blur": _blur,
}
