"""Whole scans: a DICOM series (a zip, a folder or several ``.dcm`` files), a multi-frame DICOM or a NIfTI
volume, read into one stack of 2-D slices that then go, one by one, through the same path as a single image.

- **DICOM series**: one series only (files of another SeriesInstanceUID are refused with a clear message),
  ordered along the slice normal (ImagePositionPatient · (row × column direction)), else by InstanceNumber.
  The slices stay in the plane they were acquired in. Only pixel data and the tags that place, scale and
  name the series are read (position, orientation, rescale, window, photometric interpretation, series
  description, protocol and sequence names); never a patient field.
- **Multi-frame DICOM**: its frames in stored order.
- **NIfTI** (``.nii``, ``.nii.gz``) through nibabel, reoriented to RAS+ from the affine
  (``nibabel.as_closest_canonical``); ``axial`` slices by default, or ``coronal`` / ``sagittal``;
  shown as viewers show them (axial and coronal in the radiological convention, the patient's right on
  the left; sagittal with the face on the left; the front or the top up).
- **Intensities** are windowed once per volume: the DICOM window where the header has one, else the
  0.5th–99.5th percentiles of the whole volume; so the same tissue has the same gray in every slice.

Limits: at most :data:`MAX_SLICES` slices and :data:`MAX_VOLUME_BYTES` uncompressed; a zip whose
members would expand beyond that, or expand more than :data:`MAX_ZIP_RATIO` times (a zip bomb), a zip
inside the zip, a mix of series, or a file that is neither DICOM nor NIfTI is refused with a clear message.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from brainmri.io import dicom, window
from brainmri.io.errors import ImageLoadError
from brainmri.io.images import MIN_SIDE

MAX_SLICES = 1000
MAX_VOLUME_BYTES = 500 * 2**20
MAX_ZIP_RATIO = 250  # a real DICOM or NIfTI file compresses 3-20 times; far more is a bomb
PLANES = ("axial", "coronal", "sagittal")
IGNORED = ("__MACOSX/", ".DS_Store", "DICOMDIR", "Thumbs.db")

VolumeSource = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


@dataclass
class Volume:
    slices: np.ndarray  # N x H x W uint8, windowed once for the whole volume, in display orientation
    kind: str  # "DICOM series", "multi-frame DICOM" or "NIfTI"
    plane: str  # the plane of the slices ("acquired" for DICOM)
    sequence: str | None = None  # from a DICOM header, when it names a sequence other than T1 ("T2", "FLAIR", ...)

    def __len__(self) -> int:
        return len(self.slices)


def load_volume(
    source: VolumeSource, plane: str = "axial", *, max_slices: int = MAX_SLICES, max_bytes: int = MAX_VOLUME_BYTES
) -> Volume:
    """A zip, a folder, one file or several files of one scan → :class:`Volume`."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    blobs = _gather(source, max_bytes, max_slices)
    if not blobs:
        raise ImageLoadError("no_files")
    kinds = ["nifti" if _is_nifti(b) else "dicom" if dicom.is_dicom(b) else "other" for b in blobs]
    nifti = [b for b, kind in zip(blobs, kinds) if kind == "nifti"]
    dicom_files = [b for b, kind in zip(blobs, kinds) if kind == "dicom"]
    others = kinds.count("other")
    if others:
        raise ImageLoadError("not_scan_files", others=others, files=len(blobs))
    if nifti and dicom_files or len(nifti) > 1:
        raise ImageLoadError("several_scans")
    if nifti:
        volume = _nifti_volume(nifti[0], plane, max_bytes)
    else:
        volume = _dicom_volume(dicom_files)
    if len(volume) > max_slices:
        raise ImageLoadError("too_many_slices", slices=len(volume), limit=max_slices)
    if min(volume.slices.shape[1:]) < MIN_SIDE:
        raise ImageLoadError(
            "slices_too_small", width=volume.slices.shape[2], height=volume.slices.shape[1], side=MIN_SIDE
        )
    return volume


# ----------------------------------------------------------------------------- reading the files


def _gather(source: VolumeSource, max_bytes: int, max_files: int) -> list[bytes]:
    """Every file's bytes (zips and folders opened), within the byte and file-count limits."""
    if isinstance(source, (str, os.PathLike)):
        paths = [Path(source)]
    else:
        paths = [Path(p) for p in source]
    budget = _Budget(max_bytes, max_files)
    blobs: list[bytes] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if not _ignored(child.relative_to(path).as_posix()):
                    blobs += _from_file(child, budget)
        elif path.is_file():
            blobs += _from_file(path, budget)
        else:
            raise ImageLoadError("no_such_file", name=path.name)
    return blobs


class _Budget:
    def __init__(self, max_bytes: int, max_files: int):
        self.bytes_left, self.files_left = max_bytes, max_files + 16  # a few non-slice files are fine
        self.max_bytes, self.max_files = max_bytes, max_files

    def take(self, size: int) -> None:
        self.bytes_left -= size
        self.files_left -= 1
        if self.bytes_left < 0:
            raise ImageLoadError("scan_too_big", limit=self.max_bytes / 2**20)
        if self.files_left < 0:
            raise ImageLoadError("too_many_files", limit=self.max_files)


def _ignored(name: str) -> bool:
    return any(part in name for part in IGNORED) or Path(name).name.startswith(".")


def _from_file(path: Path, budget: _Budget) -> list[bytes]:
    if zipfile.is_zipfile(path):
        return _from_zip(path, budget)
    size = path.stat().st_size
    budget.take(size)
    return [path.read_bytes()]


def _from_zip(path: Path, budget: _Budget) -> list[bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ImageLoadError("bad_zip", detail=str(err)) from None
    blobs = []
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _ignored(m.filename)]
        if sum(m.file_size for m in members) > budget.bytes_left:
            raise ImageLoadError(
                "zip_too_big", size=sum(m.file_size for m in members) / 2**20, limit=budget.max_bytes / 2**20
            )
        for member in members:
            if member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1) and member.file_size > 2**20:
                raise ImageLoadError("zip_bomb")
            try:
                with archive.open(member) as handle:  # never trust the declared size: read at most what is left
                    data = handle.read(budget.bytes_left + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as err:
                raise ImageLoadError("zip_member", detail=type(err).__name__) from None
            budget.take(len(data))
            if data[:4] == b"PK\x03\x04":
                raise ImageLoadError("zip_in_zip")
            blobs.append(data)
    return blobs


def _is_nifti(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b":  # gzip: look at the header inside
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(data)).read(352)
        except (OSError, EOFError):
            return False
    return len(data) >= 348 and (data[344:348] in (b"n+1\x00", b"ni1\x00") or data[4:8] in (b"n+2\x00",))


# ----------------------------------------------------------------------------- DICOM


def _dicom_volume(blobs: list[bytes]) -> Volume:
    datasets = [ds for ds in (dicom.read(b) for b in blobs) if "PixelData" in ds]
    if not datasets:
        raise ImageLoadError("dicom_series_no_pixels")
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise ImageLoadError("several_series", series=len(series))
    if len({(int(ds.Rows), int(ds.Columns)) for ds in datasets}) > 1:
        raise ImageLoadError("slice_sizes_differ")
    first = datasets[0]
    if len(datasets) == 1 and int(getattr(first, "NumberOfFrames", 1) or 1) > 1:
        stack, kind = dicom.values(first), "multi-frame DICOM"
    else:
        datasets = _ordered(datasets)
        stack, kind = np.stack([dicom.values(ds) for ds in datasets]), "DICOM series"
    if stack.ndim != 3:
        raise ImageLoadError("colour_dicom")
    slices = dicom.to_gray(stack, datasets[len(datasets) // 2])  # one window for the whole scan
    return Volume(slices, kind, "acquired", dicom.mr_sequence(first))


def _ordered(datasets: list) -> list:
    """Slices along the normal of their plane (ImagePositionPatient projected on row × column direction),
    else by InstanceNumber; refuses a series with two slices at one place."""
    try:
        orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=np.float64)
        normal = np.cross(orientation[:3], orientation[3:])
        keys = [float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=np.float64), normal)) for ds in datasets]
    except (AttributeError, TypeError, ValueError):
        try:
            keys = [int(ds.InstanceNumber) for ds in datasets]
        except (AttributeError, TypeError, ValueError):
            raise ImageLoadError("slice_order_unknown") from None
    if len(set(np.round(keys, 3))) < len(keys):
        raise ImageLoadError("slices_at_same_place")
    return [datasets[i] for i in np.argsort(keys, kind="stable")]


# ----------------------------------------------------------------------------- NIfTI


def _nifti_volume(data: bytes, plane: str, max_bytes: int) -> Volume:
    import nibabel

    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(data)).read(max_bytes + 1)
        except (OSError, EOFError) as err:
            raise ImageLoadError("nifti_gz_damaged", detail=str(err)) from None
        if len(data) > max_bytes:
            raise ImageLoadError("volume_too_big", limit=max_bytes / 2**20)
    try:
        image = (
            nibabel.Nifti1Image.from_bytes(data)
            if data[344:348] in (b"n+1\x00", b"ni1\x00")
            else nibabel.Nifti2Image.from_bytes(data)
        )
        image = nibabel.as_closest_canonical(image)  # RAS+: x to the right, y to the front, z up
        shape = image.shape
        if len(shape) == 4 and shape[3] >= 1:
            voxels = np.asarray(image.dataobj[..., 0], dtype=np.float64)  # a 4-D series: its first volume
        elif len(shape) == 3:
            voxels = np.asarray(image.dataobj, dtype=np.float64)
        else:
            raise ImageLoadError("nifti_not_3d", shape=str(shape))
    except ImageLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - nibabel raises many types on malformed files
        raise ImageLoadError("bad_nifti", detail=f"{type(err).__name__}: {err}") from None
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    moved = np.moveaxis(voxels, axis, 0)  # slices first; each slice keeps the other two axes in RAS order
    # rows: the front (axial) or the top (coronal, sagittal) upwards; columns flipped: the patient's right
    # on the left (axial, coronal: the radiological convention), the face on the left (sagittal)
    slices = np.flip(np.swapaxes(moved, 1, 2), axis=(1, 2))
    return Volume(window.to_uint8(window.finite_values(slices, fill=0.0)), "NIfTI", plane)
