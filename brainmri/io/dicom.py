"""The one DICOM reader: a single file, a multi-frame file and a series get the same greys for the same pixels.

Pixels go through pydicom's modality LUT (rescale slope and intercept), then pydicom's VOI LUT or window
(``apply_voi_lut``: the header's first window or VOI LUT sequence), whose output range is mapped onto 0..255;
without a window, the 0.5th-99.5th percentiles of all the pixels given (one slice, or the whole series, so that
the same tissue keeps one gray along a scan). MONOCHROME1 is inverted. Only the tags that place, scale and name
the image are read, never a patient field.
"""

from __future__ import annotations

import io
import re

import numpy as np

from brainmri.io import window
from brainmri.io.errors import ImageLoadError

# Words in a DICOM series description, protocol or sequence name that mean "not a T1-weighted slice".
NON_T1_WORDS = {
    "FLAIR": "FLAIR",
    "T2": "T2",
    "STIR": "STIR",
    "DWI": "diffusion",
    "ADC": "diffusion (ADC)",
    "DIFFUSION": "diffusion",
    "SWI": "SWI",
    "PD": "proton density",
    "TRACE": "diffusion",
}


def is_dicom(data: bytes) -> bool:
    """A DICOM file: the ``DICM`` magic, or (some exporters drop the preamble) a first element pydicom can read."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    try:
        import pydicom

        pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True, specific_tags=["Modality"])
        return len(data) > 256 and data[:2] in (b"\x08\x00", b"\x02\x00")
    except Exception:  # pydicom raises many types on data that is not DICOM
        return False


def read(data: bytes):
    """The dataset of one DICOM file's bytes (a clear :class:`ImageLoadError` when it cannot be read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise ImageLoadError("bad_dicom", detail=f"{type(err).__name__}: {err}") from None


def mr_sequence(ds) -> str | None:
    """The MR sequence a DICOM header names, when it is not T1-weighted (None when it is T1 or unknown).

    Reads the series description, protocol and sequence names only (never a patient field); T1 words win
    ("T1 FLAIR" is T1-weighted)."""
    text = " ".join(str(getattr(ds, key, "") or "") for key in ("SeriesDescription", "ProtocolName", "SequenceName"))
    words = set(re.findall(r"[A-Z0-9]+", text.upper()))
    if any(w.startswith("T1") or w in {"MPRAGE", "SPGR", "BRAVO"} for w in words):
        return None
    for word, name in NON_T1_WORDS.items():
        if any(w == word or (word in ("T2", "FLAIR") and w.startswith(word)) for w in words):
            return name
    return None


def values(ds) -> np.ndarray:
    """The stored pixels after the modality LUT, float64: ``H x W``, or ``frames x H x W`` for a multi-frame file;
    colour pixels (``... x 3``) are returned as decoded, without a LUT."""
    from pydicom.pixels import apply_modality_lut

    if "PixelData" not in ds:
        raise ImageLoadError("dicom_no_pixels")
    try:
        pixels = ds.pixel_array
        if pixels.ndim >= 3 and pixels.shape[-1] == 3 and getattr(ds, "SamplesPerPixel", 1) == 3:
            return np.asarray(pixels)
        return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    except ImageLoadError:
        raise
    except Exception as err:  # pydicom raises many types for codecs and malformed data
        raise ImageLoadError("dicom_undecodable", detail=f"{type(err).__name__}: {err}") from None


def _voi_range(ds) -> tuple[float, float] | None:
    """What pydicom's ``apply_voi_lut`` maps into for ``ds`` (None when the header has no usable VOI)."""
    sequence = ds.get("VOILUTSequence")
    if sequence:
        bits = int(sequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    bits = int(getattr(ds, "BitsStored", 16) or 16)
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(getattr(ds, "PixelRepresentation", 0) or 0) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return (low, high) if high > low else None


def to_gray(pixels: np.ndarray, ds) -> np.ndarray:
    """Modality values of one slice or of a whole stack (``... x H x W``) → uint8 greys, windowed by ``ds``'s header
    (a series: its middle slice's); see the module docstring."""
    from pydicom.pixels import apply_voi_lut

    pixels = window.finite_values(pixels)
    voi = _voi_range(ds)
    if voi is not None:
        try:
            pixels = np.asarray(apply_voi_lut(pixels, ds), dtype=np.float64)
        except (ValueError, TypeError, AttributeError, IndexError):  # a window pydicom refuses (width < 1, ...)
            voi = None
    gray = window.to_uint8(pixels, voi)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        gray = 255 - gray
    return gray
