"""The dataset audit's record (brainmri.evaluation.audit)."""

import json

from brainmri.evaluation.audit import dedup_paths, run_audit


def test_audit_writes_its_record(dataset, cache_dir, tmp_path):
    report = run_audit(dataset, tmp_path / "audit", cache_dir=cache_dir)
    out = tmp_path / "audit"
    for name in (
        "pairs.csv",
        "summary.csv",
        "audit.json",
        "dedup_testing.txt",
        "class_counts.png",
        "sizes_and_modes.png",
        "samples.png",
    ):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "audit.json").read_text())
    assert saved["per_class"]["glioma"]["testing_exact_dup_in_training"] == 1
    assert saved["per_class"]["pituitary"]["testing_near_dup_in_training"] >= 1
    kept = (out / "dedup_testing.txt").read_text().split()
    assert "glioma/planted-exact.png" not in kept and "pituitary/planted-near.jpg" not in kept
    assert report["summary"]["dedup_testing_size"] == len(kept) <= report["summary"]["testing_images"] - 2
    assert dedup_paths(dataset, cache_dir=cache_dir)[0] == kept
    assert 0 <= report["shortcut"]["from_model_input_black_rows_cols"] <= 1
    assert 0 <= report["shortcut"]["from_model_input_black_rows_cols_head_crop"] <= 1  # after the head crop
