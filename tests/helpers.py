"""Builders the tests share: DICOM and NIfTI files in memory, free loopback ports."""
from __future__ import annotations

import io
import socket

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dicom_bytes(pixels: np.ndarray | None, **tags) -> bytes:
    """An MR DICOM file (uint16 pixels, MONOCHROME2, a patient name that must never show up) with ``tags``
    set; ``pixels`` of shape (frames, H, W) makes a multi-frame file; None: no pixel data."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "SECRET-ID-42"
    ds.Modality = "MR"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
        ds.PixelRepresentation = 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_series(slices: list[np.ndarray], series_uid: str | None = None, spacing: float = 5.0, **tags) -> list[bytes]:
    """One DICOM file per slice (uint8 slices scaled to 12 bits), in slice order, each placed along z."""
    from pydicom.uid import generate_uid

    series_uid = series_uid or generate_uid()
    return [dicom_bytes(s.astype(np.uint16) * 16, SeriesInstanceUID=series_uid, InstanceNumber=i + 1,
                        ImageOrientationPatient=[1, 0, 0, 0, 1, 0], ImagePositionPatient=[0, 0, spacing * i], **tags)
            for i, s in enumerate(slices)]


def nifti_bytes(voxels: np.ndarray, affine: np.ndarray | None = None, gz: bool = False) -> bytes:
    """A NIfTI-1 file of ``voxels`` (X x Y x Z) with ``affine`` (default: 1 mm RAS+)."""
    import gzip

    import nibabel

    image = nibabel.Nifti1Image(voxels, np.eye(4) if affine is None else affine)
    data = image.to_bytes()
    return gzip.compress(data) if gz else data
