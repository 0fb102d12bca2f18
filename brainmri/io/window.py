"""One intensity window for a slice or a whole scan: values → uint8 greys, the same for DICOM and NIfTI."""

from __future__ import annotations

import numpy as np

from brainmri.io.errors import ImageLoadError

PERCENTILES = (0.5, 99.5)  # the window of a scan whose header names none


def finite_values(values: np.ndarray, fill: float | None = None) -> np.ndarray:
    """``values`` as float64 with NaN and infinities replaced by ``fill`` (default: the smallest finite value)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ImageLoadError("no_finite_pixels")
    return np.where(finite, values, np.min(values[finite]) if fill is None else fill)


def to_uint8(values: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Finite ``values`` → uint8, ``window`` (low, high) onto 0..255; without one, the values' own percentiles,
    taken over everything given (a whole scan keeps one gray per tissue)."""
    low, high = window if window is not None else (float(v) for v in np.percentile(values, PERCENTILES))
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round(np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.uint8)
