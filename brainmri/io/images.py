"""One entry point that turns any supported input into the same grayscale array.

Every caller (training cache, evaluation, app, heatmap overlay) goes through
:func:`load_grayscale`, so the same file always gives the same pixels.

Supported: JPEG, PNG, BMP, TIFF, WebP, GIF (first frame of a still image) in
modes 1, L, LA, P, PA, RGB, RGBA, CMYK, I, I;16, F; EXIF orientation is applied;
the format is read from the bytes, not the file name. DICOM (``.dcm`` or the
``DICM`` magic) goes through :mod:`brainmri.io.dicom`, the reader a whole scan goes through too.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from brainmri.io import dicom
from brainmri.io.errors import ImageLoadError

__all__ = ["ImageLoadError", "LoadedImage", "load_grayscale", "load_image"]

# Pillow's decompression-bomb guard stays on; we lower its ceiling to a size a
# brain slice never reaches (about 8k x 8k) and turn its warning into an error.
MAX_PIXELS = 64_000_000
MAX_BYTES = 25 * 1024 * 1024
MIN_SIDE = 16

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]


@dataclass(frozen=True)
class LoadedImage:
    gray: np.ndarray  # H x W uint8
    colourfulness: float  # mean (max - min) over RGB channels, 0..1; 0 for grayscale sources
    sequence: str | None = None  # DICOM only: the MR sequence the header names when it is not T1 ("T2", "FLAIR", ...)


def load_grayscale(source: ImageSource, *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Return an ``H x W`` uint8 grayscale array for a path, bytes, PIL image or array."""
    return load_image(source, max_bytes=max_bytes).gray


def load_image(source: ImageSource, *, max_bytes: int = MAX_BYTES) -> LoadedImage:
    """The grayscale array and how colourful the source was (MRI slices are gray; photos are not)."""
    if isinstance(source, Image.Image):
        return LoadedImage(_pil_to_gray(source), _colourfulness(source))
    if isinstance(source, np.ndarray):
        chroma = _chroma(source) if source.ndim == 3 and source.shape[-1] in (3, 4) else 0.0
        return LoadedImage(_array_to_gray(source), chroma)
    data = _read_bytes(source, max_bytes)
    if _is_dicom(data, source):
        return _dicom_image(data)
    image = _open_pil(data)
    return LoadedImage(_pil_to_gray(image), _colourfulness(image))


def _chroma(rgb: np.ndarray) -> float:
    rgb = np.asarray(rgb)[..., :3].astype(np.float32)
    scale = 255.0 if rgb.max() > 1.0 else 1.0
    return float((rgb.max(-1) - rgb.min(-1)).mean() / scale)


def _colourfulness(image: Image.Image) -> float:
    if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return 0.0
    small = image.copy()
    small.thumbnail((128, 128))
    return _chroma(np.asarray(small.convert("RGB")))


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError("no_such_file", name=path.name)
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageLoadError("file_too_big", size=size / 2**20, limit=max_bytes / 2**20)
        data = path.read_bytes()
    else:
        raise ImageLoadError("not_a_source", kind=type(source).__name__)
    if not data:
        raise ImageLoadError("empty")
    if len(data) > max_bytes:
        raise ImageLoadError("file_too_big", size=len(data) / 2**20, limit=max_bytes / 2**20)
    return data


def _is_dicom(data: bytes, source) -> bool:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    return isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".dcm")


def _open_pil(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                image = Image.open(io.BytesIO(data))
                _check_size(*image.size)
                if getattr(image, "n_frames", 1) > 1:
                    raise ImageLoadError("several_frames")
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError("too_many_pixels", megapixels=MAX_PIXELS // 1_000_000) from None
    except UnidentifiedImageError:
        raise ImageLoadError("not_an_image") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError("damaged", detail=str(err)) from None
    return ImageOps.exif_transpose(image)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageLoadError("too_large", width=width, height=height)
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError("too_small", width=width, height=height, side=MIN_SIDE)


def _pil_to_gray(image: Image.Image) -> np.ndarray:
    _check_size(*image.size)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _array_to_gray(np.asarray(image))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are background: composite on black, the scan's own background.
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _array_to_gray(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ImageLoadError("not_2d", shape=str(array.shape))
    _check_size(array.shape[1], array.shape[0])
    if array.dtype == np.uint8:
        return array.copy()
    return _rescale_to_uint8(array.astype(np.float64))


def _rescale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Min-max stretch of a wide-range image (16-bit, float, DICOM) to 0..255."""
    finite = np.isfinite(array)
    if not finite.any():
        raise ImageLoadError("no_finite_pixels")
    array = np.where(finite, array, np.nanmin(np.where(finite, array, np.inf)))
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - low) * (255.0 / (high - low))).astype(np.uint8)


def _dicom_image(data: bytes) -> LoadedImage:
    """One DICOM file through the one DICOM reader; a multi-frame file gives its middle frame, windowed as the
    scan it belongs to would be (:mod:`brainmri.io.dicom`)."""
    ds = dicom.read(data)
    pixels = dicom.values(ds)
    colour = pixels.shape[-1] == 3 and getattr(ds, "SamplesPerPixel", 1) == 3
    frames = pixels.ndim - (1 if colour else 0)
    if colour:
        gray = _array_to_gray(pixels[pixels.shape[0] // 2] if frames == 3 else pixels)
    else:
        gray = dicom.to_gray(pixels, ds)
        gray = gray[gray.shape[0] // 2] if gray.ndim == 3 else gray
    return LoadedImage(gray, 0.0, dicom.mr_sequence(ds))
