"""train.py's commands: one-line errors, the calibrate, crossval and held-out summary commands' contracts."""

import json

import pytest

import train as cli
from brainmri.commands.heldout import _training_stages
from brainmri.inference.release import read_config
from helpers import TINY_ARCH


def test_cli_errors_are_one_line(dataset, tmp_path, capsys, monkeypatch):
    import socket

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("unreachable")))
    code = cli.main(["train", "--data", str(dataset), "--out", str(tmp_path / "x"), "--arch", TINY_ARCH])
    err = capsys.readouterr().err
    assert code == 2 and "--no-pretrained" in err and "Traceback" not in err
    assert (
        cli.main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", str(dataset), "--out", str(tmp_path)])
        == 2
    )


@pytest.mark.slow  # trains, exports or serves
def test_calibrate_command_refits_on_the_run_split(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert cli.main(["calibrate", "--run", str(copy)]) == 0
    result = json.loads(capsys.readouterr().out)
    config = read_config(copy / "release")
    assert config["temperature"] == pytest.approx(result["temperature"])
    assert config["screening"]["feature_threshold"] == pytest.approx(result["feature_threshold"])


def test_heldout_summary_follows_a_fine_tune_back_to_its_first_stage(tmp_path):
    from brainmri.evaluation.modelcard import _stages_text

    first, second = tmp_path / "base", tmp_path / "ft"
    (first / "release").mkdir(parents=True)
    second.mkdir()
    (first / "args.json").write_text(json.dumps({"epochs": 100, "init": None}))
    (second / "args.json").write_text(json.dumps({"epochs": 30, "init": str(first / "release")}))
    stages = _training_stages(second)
    assert [(s["run"], s["epochs"]) for s in stages] == [("base", 100), ("ft", 30)]
    assert _stages_text({"run": "ft", "stages": stages}) == "`base`, 100 epochs, then `ft`, 30 epochs (fine-tune)"
    french = "`base`, 100 époques, puis `ft`, 30 époques (affinage)"
    assert _stages_text({"run": "ft", "stages": stages}, "fr") == french
    (first / "args.json").write_text(json.dumps({"epochs": 100, "init": str(first / "release")}))  # a loop ends
    assert len(_training_stages(second)) == 2


def test_crossval_needs_origins_and_masks_where_asked(dataset, tmp_path, capsys):
    model = ["--arch", TINY_ARCH, "--no-pretrained"]
    base = ["crossval", "--data", str(dataset), "--out", str(tmp_path / "x"), *model]
    assert cli.main(base) == 2
    assert "--origins" in capsys.readouterr().err
    assert cli.main(["train", "--data", str(dataset), "--out", str(tmp_path / "y"), *model, "--seg-weight", "1"]) == 2
    assert "--masks" in capsys.readouterr().err
