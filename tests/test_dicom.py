"""brainmri.io.dicom: one reader for a DICOM slice, a multi-frame file and a series (the same greys for the same
pixels), pydicom's own modality and VOI LUTs, MONOCHROME1, and clear refusals."""

import numpy as np
import pytest

from brainmri.io import dicom
from brainmri.io.errors import ImageLoadError
from brainmri.io.images import load_image
from brainmri.io.volumes import load_volume
from helpers import dicom_bytes, dicom_series


@pytest.fixture(scope="module")
def stack() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    head = ((yy - 24) ** 2 + (xx - 24) ** 2 < 400).astype(float)
    return [np.clip(head * (60 + 30 * k) + rng.normal(0, 5, (48, 48)), 0, 255).astype(np.uint8) for k in range(5)]


@pytest.mark.parametrize("window", [{"WindowCenter": 1500, "WindowWidth": 2400}, {}], ids=["window", "no window"])
def test_a_slice_alone_and_inside_its_series_gets_the_same_greys(stack, tmp_path, window):
    files = dicom_series(stack, **window)
    for i, data in enumerate(files):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    volume = load_volume(tmp_path)
    if window:  # the header's window: every slice alone is windowed exactly as inside the scan
        for i, data in enumerate(files):
            np.testing.assert_array_equal(load_image(data).gray, volume.slices[i])
    else:  # no window: the scan's percentiles (one gray per tissue along it); alone, the slice's own
        middle = len(files) // 2
        alone = load_image(files[middle]).gray
        assert np.corrcoef(alone.ravel(), volume.slices[middle].ravel())[0, 1] > 0.99


def test_a_multi_frame_file_read_as_one_image_is_the_middle_frame_of_the_scan(stack, tmp_path):
    data = dicom_bytes(np.stack(stack).astype(np.uint16) * 16)
    (tmp_path / "frames.dcm").write_bytes(data)
    volume = load_volume(tmp_path / "frames.dcm")
    assert volume.kind == "multi-frame DICOM" and len(volume) == len(stack)
    np.testing.assert_array_equal(load_image(data).gray, volume.slices[len(stack) // 2])


def test_window_and_rescale_follow_pydicom(stack):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = dicom.read(
        dicom_bytes(
            stack[2].astype(np.uint16) * 16, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=2000, WindowWidth=3000
        )
    )
    values = dicom.values(ds)
    np.testing.assert_array_equal(values, apply_modality_lut(ds.pixel_array, ds))
    low, high = dicom._voi_range(ds)
    assert (low, high) == (-100.0, 4095 * 2 - 100.0)  # BitsStored 12, through the rescale
    expected = np.round(np.clip((apply_voi_lut(values, ds) - low) / (high - low), 0, 1) * 255)
    np.testing.assert_array_equal(dicom.to_gray(values, ds), expected.astype(np.uint8))


def test_monochrome1_is_inverted(stack):
    plain = dicom.read(dicom_bytes(stack[2].astype(np.uint16) * 16))
    inverted = dicom.read(dicom_bytes(stack[2].astype(np.uint16) * 16, PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_array_equal(
        dicom.to_gray(dicom.values(inverted), inverted), 255 - dicom.to_gray(dicom.values(plain), plain)
    )


def test_unreadable_files_are_refused_clearly():
    with pytest.raises(ImageLoadError, match="holds no pixel data"):
        dicom.values(dicom.read(dicom_bytes(None)))
    assert not dicom.is_dicom(b"just some text, certainly not a DICOM file" * 10)
    assert dicom.mr_sequence(dicom.read(dicom_bytes(None, SeriesDescription="AX T2 FLAIR"))) == "FLAIR"
    assert dicom.mr_sequence(dicom.read(dicom_bytes(None, SeriesDescription="T1 FLAIR post"))) is None
