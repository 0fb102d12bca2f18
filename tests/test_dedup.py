"""Duplicates: exact and near copies across the splits (brainmri.data.dedup)."""

from brainmri.data.dedup import duplicate_groups, find_pairs
from brainmri.data.folders import load_folder
from brainmri.evaluation.audit import AUDIT_PREPROCESS


def test_planted_duplicates_are_found(dataset, cache_dir):
    train = load_folder(dataset / "Training", AUDIT_PREPROCESS, cache_dir=cache_dir)
    test = load_folder(dataset / "Testing", AUDIT_PREPROCESS, cache_dir=cache_dir)
    pairs = find_pairs(test.phash, test.images, test.sha256, train.phash, train.images, train.sha256)
    found = {(test.paths[p.a], train.paths[p.b], p.kind) for p in pairs}
    assert ("glioma/planted-exact.png", "glioma/Tr-glioma-001.png", "exact") in found
    assert ("pituitary/planted-near.jpg", "pituitary/Tr-pituitary-002.png", "near") in found
    groups = duplicate_groups(len(test), [])
    assert len(set(groups)) == len(test)
