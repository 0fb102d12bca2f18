"""Whole scans: DICOM series (files, folders, zips), multi-frame DICOM and NIfTI, and predicting them."""

import random
import zipfile

import numpy as np
import pytest
from PIL import Image

from brainmri import Predictor
from brainmri.io.images import ImageLoadError
from brainmri.io.volumes import load_volume
from helpers import CLASSES, dicom_bytes, dicom_series, nifti_bytes, real_images


@pytest.fixture(scope="module")
def slices() -> list[np.ndarray]:
    """Six real Testing slices at 128 px (a stand-in scan), framed by a blank slice and a scalp-only slice."""
    real = [np.asarray(Image.open(p).convert("L").resize((128, 128))) for p, _ in real_images(2)[:6]]
    blank = np.zeros((128, 128), np.uint8)
    scalp = np.zeros((128, 128), np.uint8)
    scalp[56:72, 56:72] = 120  # the top of the head: a small patch
    return [blank, scalp, *real, scalp.copy(), blank.copy()]


def _correlated(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float(np.array_equal(a > 0, b > 0))
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def _assert_same_order(volume, slices):
    assert len(volume) == len(slices)
    for got, expected in zip(volume.slices, slices):
        assert _correlated(got, expected) > 0.99


def test_series_order_is_recovered_from_shuffled_files_folder_and_zip(slices, tmp_path):
    files = dicom_series(slices)
    order = list(range(len(files)))
    random.Random(0).shuffle(order)
    folder = tmp_path / "series"
    folder.mkdir()
    for rank, i in enumerate(order):
        (folder / f"IM{rank:04d}.dcm").write_bytes(files[i])
    (folder / ".DS_Store").write_bytes(b"\0\1")  # system files are ignored
    volume = load_volume(folder)
    assert volume.kind == "DICOM series" and volume.plane == "acquired"
    _assert_same_order(volume, slices)
    _assert_same_order(load_volume(sorted(folder.glob("*.dcm"))), slices)  # several files
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for rank, i in enumerate(order):
            z.writestr(f"export/IM{rank:04d}", files[i])  # no extension: recognised by content
        z.writestr("__MACOSX/._IM0000", b"junk")
    _assert_same_order(load_volume(archive), slices)


def test_series_without_positions_is_ordered_by_instance_number(slices, tmp_path):
    files = [
        dicom_bytes(s.astype(np.uint16) * 16, SeriesInstanceUID="1.2.3", InstanceNumber=len(slices) - i)
        for i, s in enumerate(slices)
    ]  # numbered backwards
    for i, data in enumerate(files):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    _assert_same_order(load_volume(tmp_path), slices[::-1])


def test_one_window_for_the_whole_series(slices, tmp_path):
    files = dicom_series(slices, WindowCenter=1000, WindowWidth=2000)
    for i, data in enumerate(files):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    volume = load_volume(tmp_path)
    raw = np.stack(slices).astype(float) * 16
    expected = np.round(np.clip(raw / 2000, 0, 1) * 255).astype(np.uint8)  # window 0..2000 on every slice
    # pydicom's LINEAR window (c - 0.5, w - 1) mapped onto 0..255: the same as 0..2000 to within a gray level
    assert np.abs(volume.slices.astype(int) - expected).max() <= 1


def test_mixed_series_non_images_nested_zips_and_bombs_are_refused(slices, tmp_path):
    mixed = tmp_path / "mixed.zip"
    with zipfile.ZipFile(mixed, "w") as z:
        for i, data in enumerate(dicom_series(slices[:3], "1.2.3") + dicom_series(slices[3:6], "1.2.4")):
            z.writestr(f"{i}.dcm", data)
    with pytest.raises(ImageLoadError, match="2 different series"):
        load_volume(mixed)
    notes = tmp_path / "notes.zip"
    with zipfile.ZipFile(notes, "w") as z:
        for i, data in enumerate(dicom_series(slices[:3])):
            z.writestr(f"{i}.dcm", data)
        z.writestr("report.txt", b"Patient Jane Doe, findings ...")
    with pytest.raises(ImageLoadError, match="1 of the 4 files are neither DICOM nor NIfTI") as err:
        load_volume(notes)
    assert "Jane" not in str(err.value) and "report" not in str(err.value)  # no file name, no content
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as z:
        z.write(notes, "inner.zip")
    with pytest.raises(ImageLoadError, match="another zip"):
        load_volume(nested)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("slice.dcm", b"\0" * (8 * 2**20))  # 8 MB of zeros in a few kB
    with pytest.raises(ImageLoadError, match="zip bomb"):
        load_volume(bomb)
    with pytest.raises(ImageLoadError, match="expands to 8 MB; the limit is 4 MB"):
        load_volume(bomb, max_bytes=4 * 2**20)
    text = tmp_path / "scan.nii"
    text.write_text("not a volume")
    with pytest.raises(ImageLoadError, match="neither DICOM nor NIfTI"):
        load_volume(text)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_volume(tmp_path / "missing.zip")


def test_slice_count_limit(slices, tmp_path):
    for i, data in enumerate(dicom_series(slices)):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    with pytest.raises(ImageLoadError, match="limit is 5"):
        load_volume(tmp_path, max_slices=5)


def test_multi_frame_dicom_keeps_its_frames(slices, tmp_path):
    path = tmp_path / "multi.dcm"
    path.write_bytes(dicom_bytes(np.stack(slices).astype(np.uint16) * 16))
    volume = load_volume(path)
    assert volume.kind == "multi-frame DICOM"
    _assert_same_order(volume, slices)


def _head_with_marker() -> np.ndarray:
    """X x Y x Z (RAS+) with a bright block at the patient's right (high x), front (high y), top (high z)."""
    voxels = np.zeros((40, 48, 24), np.float32)
    voxels[5:35, 5:43, 2:22] = 100.0
    voxels[26:36, 34:44, 14:20] = 400.0  # over 1 % of the voxels: above the 99.5th-percentile window
    return voxels


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_planes_follow_the_affine(tmp_path, gz):
    voxels = _head_with_marker()
    plain = tmp_path / ("ras.nii.gz" if gz else "ras.nii")
    plain.write_bytes(nifti_bytes(voxels, gz=gz))
    axial = load_volume(plain)
    assert axial.kind == "NIfTI" and axial.slices.shape == (24, 48, 40)  # Z slices of Y rows x X columns
    z = 18  # a slice through the marker: in the top-left corner (front up, patient's right on the left)
    rows, cols = np.nonzero(axial.slices[z] == axial.slices[z].max())
    assert rows.max() < 24 and cols.max() < 20
    assert load_volume(plain, "coronal").slices.shape == (48, 24, 40)
    assert load_volume(plain, "sagittal").slices.shape == (40, 24, 48)
    # the same head stored left-right and front-back mirrored, with an affine that says so: the same slices
    flipped = tmp_path / "las.nii"
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [39, 47, 0]
    flipped.write_bytes(nifti_bytes(voxels[::-1, ::-1, :].copy(), affine))
    np.testing.assert_array_equal(load_volume(flipped).slices, axial.slices)
    with pytest.raises(ValueError, match="plane"):
        load_volume(plain, "oblique")


@pytest.fixture(scope="module")
def predictor(tiny_release):
    return Predictor.from_pretrained(tiny_release, expected_labels=CLASSES)


def test_predict_volume_equals_slice_by_slice_and_skips_the_ends(predictor, slices, tmp_path):
    for i, data in enumerate(dicom_series(slices)):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    result = predictor.predict_volume(tmp_path)
    assert [s.index for s in result.slices] == list(range(len(slices)))
    assert [s.skipped for s in result.slices[:2]] == ["blank", "too little of the head"]
    assert [s.skipped for s in result.slices[-2:]] == ["too little of the head", "blank"]
    assert all(not s.skipped for s in result.slices[2:-2])
    for s in result.read():
        probabilities, verdict = predictor.screen(result.volume.slices[s.index])
        assert s.probabilities == pytest.approx(probabilities, abs=1e-5)
        assert (s.verdict.status, s.verdict.code) == (verdict.status, verdict.code)
    summary = result.summary()
    assert summary["read"] == len(slices) - 4 and summary["skipped"] == 4
    tumour = [s["tumour_probability"] for s in summary["most_suspicious"]]
    assert tumour == sorted(tumour, reverse=True) and len(tumour) == 5
    assert "Secret" not in repr(summary) and "SECRET" not in repr(summary)  # no patient field anywhere
    every_other = predictor.predict_volume(result.volume, every=2)
    assert [s.index for s in every_other.slices] == list(range(0, len(slices), 2))
    with pytest.raises(ValueError, match="every"):
        predictor.predict_volume(result.volume, every=0)


def test_t2_series_is_uncertain_on_every_slice(predictor, slices, tmp_path):
    for i, data in enumerate(dicom_series(slices, SeriesDescription="AX T2 FSE")):
        (tmp_path / f"{i}.dcm").write_bytes(data)
    result = predictor.predict_volume(tmp_path)
    assert result.volume.sequence == "T2"
    assert all(s.verdict.status in ("uncertain", "not_mri") for s in result.read())
