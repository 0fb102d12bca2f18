"""Class folders: classes, unreadable files, the decoded-image cache, the validation split (brainmri.data.folders)."""

import numpy as np
import pytest

from brainmri.data import folders as data_module
from brainmri.data.folders import check_classes, list_classes, load_folder, split_train_val
from brainmri.evaluation.audit import AUDIT_PREPROCESS
from brainmri.inference.preprocess import Preprocess
from helpers import CLASSES

PRE = Preprocess(input_size=(3, 32, 32), interpolation="bicubic", crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_classes_come_from_sorted_folders(dataset):
    assert list_classes(dataset / "Training") == CLASSES
    check_classes(CLASSES[:2], CLASSES, allow_subset=True)
    with pytest.raises(ValueError, match="differ"):
        check_classes(CLASSES[:2], CLASSES, allow_subset=False)
    with pytest.raises(ValueError, match="not among"):
        check_classes(["cat"], CLASSES, allow_subset=True)


def test_corrupt_files_are_reported_and_skipped(dataset, tmp_path, caplog):
    image_set = load_folder(dataset / "Training", PRE, cache_dir=tmp_path)
    assert len(image_set) == 4 * 24
    assert [p for p, _ in image_set.skipped] == ["notumor/corrupt.jpg"]
    assert "corrupt.jpg" in caplog.text
    assert image_set.images.shape == (96, 32, 32) and image_set.images.dtype == np.uint8
    assert np.bincount(image_set.labels).tolist() == [24, 24, 24, 24]


def test_cache_is_reused_and_keyed_by_preprocessing(dataset, tmp_path, monkeypatch):
    first = load_folder(dataset / "Testing", PRE, cache_dir=tmp_path)
    monkeypatch.setattr(data_module, "_decode", lambda *a: pytest.fail("decoded again"))
    second = load_folder(dataset / "Testing", PRE, cache_dir=tmp_path)
    assert second.paths == first.paths and np.array_equal(second.images, first.images)
    monkeypatch.undo()
    other = load_folder(dataset / "Testing", AUDIT_PREPROCESS, cache_dir=tmp_path)
    assert other.images.shape[1:] == (128, 128)


def test_split_is_stratified_seeded_and_keeps_groups_together(dataset, cache_dir):
    image_set = load_folder(dataset / "Training", PRE, cache_dir=cache_dir)
    groups = np.arange(len(image_set))
    groups[:6] = 0  # six images that must stay on one side
    train, val = split_train_val(image_set, groups, 0.25, seed=0)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(image_set)
    counts = np.bincount(image_set.labels[val], minlength=4)
    assert counts.min() >= 3  # every class in validation
    assert set(range(6)) <= set(train) or set(range(6)) <= set(val)
    again, _ = split_train_val(image_set, groups, 0.25, seed=0)
    assert np.array_equal(train, again)
