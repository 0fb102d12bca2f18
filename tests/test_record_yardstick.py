"""scripts/record_yardstick.py: a judged run's records (and, when asked, its release) kept under assets/yardsticks."""

import json
import sys

import pytest

from scripts import record_yardstick

ROW = "path,patient,site,sequence,label,predicted,p_glioma,p_meningioma,p_notumor,p_pituitary,verdict,code\n"


@pytest.fixture
def run(tmp_path):
    """A release run folder as `train.py release` leaves it, with tiny stand-ins for every file read."""
    stage, lgg = tmp_path / "run" / "r99-du", tmp_path / "run" / "metrics" / "lgg"
    (stage / "release").mkdir(parents=True)
    lgg.mkdir(parents=True)
    (stage / "args.json").write_text("{}")
    (stage / "epochs.csv").write_text("epoch\n0\n")
    config = {"brainmri": {"epoch": 0, "val_acc": 0.9}, "screening": {"min_confidence": 0.95}}
    (stage / "release" / "config.json").write_text(json.dumps(config))
    (stage / "release" / "model.safetensors").write_bytes(b"weights")
    (stage / "release" / "ood.safetensors").write_bytes(b"ood")
    (lgg / "lgg.json").write_text(json.dumps({"pointing_game_glioma": 0.8}))
    (lgg / "lgg.md").write_text("table\n")
    answers = ROW + "a/000_flair.jpg,a,DU,flair,glioma,glioma,0.92,0.04,0.02,0.02,uncertain,unsure\n"
    answers += "a/001_flair.jpg,a,DU,flair,glioma,notumor,0.10,0.05,0.80,0.05,uncertain,unsure\n"
    (lgg / "lgg-slices.csv").write_text(answers)
    return tmp_path


def _record(run, monkeypatch, *flags):
    monkeypatch.setattr(record_yardstick, "ROOT", run)
    monkeypatch.setattr(sys, "argv", ["record_yardstick.py", str(run / "run"), "r99-du", *flags])
    record_yardstick.main()
    return run / "assets" / "yardsticks" / "r99-du"


def test_the_records_are_kept_and_the_release_only_when_asked(run, monkeypatch, capsys):
    out = _record(run, monkeypatch)
    assert sorted(p.name for p in out.iterdir()) == [
        "args.json",
        "epochs.csv",
        "lgg-slices.csv",
        "lgg.json",
        "lgg.md",
        "release-config.json",
    ]
    assert 'at the fixed 0.90: 50.0 % answered "ok", 100.0 % of those right' in capsys.readouterr().out
    out = _record(run, monkeypatch, "--keep-release")
    assert (out / "release" / "model.safetensors").read_bytes() == b"weights"
    assert sorted(p.name for p in (out / "release").iterdir()) == [
        "config.json",
        "model.safetensors",
        "ood.safetensors",
    ]
