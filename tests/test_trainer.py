"""End to end: train a few steps, resume, write a release folder, evaluate it, push (faked)."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train as cli
from brainmri import Predictor
from brainmri.inference.release import read_config
from brainmri.training.config import TrainConfig
from brainmri.training.trainer import Trainer
from helpers import CLASSES, TINY_ARCH, TINY_SIZE, tiny_run, tiny_trainer

ROOT = Path(__file__).resolve().parents[1]


def train_args(dataset, out, cache_dir, *extra):
    return tiny_run("train", str(dataset), str(out), str(cache_dir), *extra)


def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # trains, exports or serves
def test_run_folder_holds_the_record(run):
    for name in (
        "args.json",
        "epochs.csv",
        "curves.png",
        "augmented_batch.png",
        "split.csv",
        "last.pt",
        "summary.json",
        "release/model.safetensors",
        "release/config.json",
        "evaluation/metrics.json",
        "evaluation/confusion_full.png",
        "evaluation/gradcam_gallery.png",
    ):
        assert (run / name).is_file(), name
    history = rows(run / "epochs.csv")
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]
    config = read_config(run / "release")
    assert config["label_names"] == CLASSES and config["temperature"] > 0
    assert config["brainmri"]["recipe"] == "scratch"
    assert (run / "release" / "ood.safetensors").is_file() and config["screening"]["feature_threshold"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["loop_img_s"] > 0 and "bare_step_img_s" not in summary  # measured by benchmarks/ only
    assert summary["wall_seconds"] > summary["train_seconds"] > 0  # setup, validation and calibration on top
    split = rows(run / "split.csv")
    assert {r["split"] for r in split} == {"train", "val"} and all("Testing" not in r["path"] for r in split)
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2


@pytest.mark.slow  # trains, exports or serves
def test_metrics_json_has_the_promised_shape(run):
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    for name in ("full", "dedup"):
        m = metrics[name]
        for key in (
            "n",
            "labels",
            "accuracy",
            "accuracy_ci95",
            "macro_f1",
            "macro_f1_ci95",
            "weighted_f1",
            "roc_auc",
            "ece",
            "per_class",
            "confusion_matrix",
        ):
            assert key in m, key
        assert m["labels"] == CLASSES and set(m["roc_auc"]) == {*CLASSES, "macro"}
        assert m["accuracy_ci95"][0] <= m["accuracy"] <= m["accuracy_ci95"][1]
        assert np.array(m["confusion_matrix"]).sum() == m["n"]
    assert metrics["full"]["n"] == 26 and metrics["dedup"]["n"] <= 24


@pytest.mark.slow  # trains, exports or serves
def test_resume_continues_to_the_same_result(dataset, cache_dir, run, tmp_path):
    out = tmp_path / "resumed"
    assert cli.main(train_args(dataset, out, cache_dir, "--recipe", "scratch", "--epochs", "2", "--no-evaluate")) == 0
    assert (
        cli.main(
            train_args(dataset, out, cache_dir, "--recipe", "scratch", "--epochs", "3", "--resume", "--no-evaluate")
        )
        == 0
    )
    straight, resumed = rows(run / "epochs.csv"), rows(out / "epochs.csv")
    assert len(resumed) == 3
    for a, b in zip(straight, resumed):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-4)


@pytest.mark.slow  # trains, exports or serves
def test_killed_mid_epoch_resumes_to_the_uninterrupted_result(dataset, cache_dir, run, tmp_path):
    """SIGKILL in the middle of epoch 2 (3 steps per epoch; killed before step 5), then --resume: the
    run completes with the same epochs and the same evaluation as the uninterrupted `run`."""
    import time

    out, marker = tmp_path / "killed", tmp_path / "parked"
    args = train_args(dataset, out, cache_dir, "--recipe", "scratch", "--epochs", "3")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "testing" / "kill_mid_epoch.py"), str(marker), "5", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, "the run ended before it reached epoch 2"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 0  # only epoch 1 was saved
    assert len(rows(out / "epochs.csv")) == 1 and not (out / "summary.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written state or release

    assert cli.main([*args, "--resume"]) == 0
    straight, resumed = rows(run / "epochs.csv"), rows(out / "epochs.csv")
    assert len(resumed) == len(straight) == 3
    for a, b in zip(straight, resumed):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-4)
    expected = json.loads((run / "evaluation" / "metrics.json").read_text())["full"]
    got = json.loads((out / "evaluation" / "metrics.json").read_text())["full"]
    assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
    assert got["ece"] == pytest.approx(expected["ece"], abs=1e-4)
    assert got["confusion_matrix"] == expected["confusion_matrix"]


@pytest.mark.slow  # trains, exports or serves
def test_report_recipe_trains_head_first_then_everything(dataset, cache_dir, tmp_path):
    trainer = tiny_trainer(dataset, tmp_path / "r", cache_dir, recipe="report", epochs=3, steps_per_epoch=2, patience=1)
    trainer.run()
    history = rows(tmp_path / "r" / "epochs.csv")
    assert [r["phase"] for r in history][:2] == ["head", "head"]
    assert trainer.cfg.optimizer == "adam" and trainer.cfg.lr == 1e-4 and trainer.cfg.head_lr == 1e-3
    assert len(trainer.optimizer.param_groups[0]["params"]) == len(list(trainer.model.parameters()))


@pytest.mark.slow  # trains, exports or serves
def test_init_from_release_and_class_check(dataset, cache_dir, run, tmp_path):
    out = tmp_path / "init"
    args = train_args(
        dataset, out, cache_dir, "--init", str(run / "release"), "--epochs", "1", "--head-epochs", "0", "--no-evaluate"
    )
    for flag in ("--arch", "--image-size"):  # left at the CLI defaults (convnext_tiny, 224): the release decides
        del args[args.index(flag) : args.index(flag) + 2]
    assert cli.main(args) == 0
    assert read_config(out / "release")["label_names"] == CLASSES
    recorded = json.loads((out / "args.json").read_text())  # the release's model, not the CLI defaults
    assert recorded["arch"] == TINY_ARCH and recorded["image_size"] == TINY_SIZE and recorded["init"]
    # moved onto a larger input: the new release's preprocessing says the size it was trained at
    larger = tmp_path / "larger"
    args[args.index("--out") + 1] = str(larger)
    assert cli.main([*args, "--init-image-size", str(TINY_SIZE + 16)]) == 0
    assert read_config(larger / "release")["pretrained_cfg"]["input_size"][-2:] == [TINY_SIZE + 16] * 2
    assert json.loads((larger / "args.json").read_text())["image_size"] == TINY_SIZE + 16
    predictor = Predictor.from_pretrained(larger / "release")
    image = np.random.default_rng(0).integers(0, 255, (50, 40), dtype=np.uint8)
    assert predictor.preprocess.image_size == TINY_SIZE + 16
    assert sum(predictor.predict(image).values()) == pytest.approx(1.0, abs=1e-5)
    # moved onto head-levelled intensities: the release says so, and a stage started from it keeps them
    levelled, after = tmp_path / "levelled", tmp_path / "after"
    args[args.index("--out") + 1] = str(levelled)
    assert cli.main([*args, "--intensity", "head"]) == 0
    assert read_config(levelled / "release")["preprocessing"]["intensity"] == "head"
    assert Predictor.from_pretrained(levelled / "release").preprocess.intensity == "head"
    args[args.index("--out") + 1], args[args.index("--init") + 1] = str(after), str(levelled / "release")
    assert cli.main(args) == 0
    assert read_config(after / "release")["preprocessing"]["intensity"] == "head"


def _floor_trainer(reference_acc, floor):
    trainer = Trainer.__new__(Trainer)
    trainer.cfg = TrainConfig(data="d", out="o", clean_floor=floor)
    trainer.reference_acc, trainer.best_loss, trainer.best_meets_floor = reference_acc, math.inf, False
    return trainer


def _choose(trainer, epochs):
    saved = []
    for acc, loss in epochs:
        row = {"val_acc": acc, "select_loss": loss}
        if trainer._improves(row):
            trainer.best_loss, trainer.best_meets_floor = loss, row.get("meets_floor", True)
            saved.append((acc, loss))
    return saved


def test_clean_floor_prefers_epochs_that_kept_clean_accuracy():
    epochs = [(0.95, 0.50), (0.97, 0.90), (0.94, 0.10), (0.965, 0.80), (0.97, 0.85)]
    # the reference is 0.97 and the floor half a point: 0.965 keeps it, 0.95 and 0.94 do not
    assert _choose(_floor_trainer(0.97, 0.005), epochs) == [(0.95, 0.50), (0.97, 0.90), (0.965, 0.80)]
    assert _choose(_floor_trainer(None, None), epochs) == [(0.95, 0.50), (0.94, 0.10)]  # no floor: the loss alone
    assert _choose(_floor_trainer(0.99, 0.005), epochs) == [(0.95, 0.50), (0.94, 0.10)]  # none keeps it: the loss


@pytest.mark.slow  # trains, exports or serves
def test_clean_floor_run_records_and_follows_its_reference(dataset, cache_dir, run, tmp_path):
    from brainmri.inference.release import load_release
    from brainmri.training.steps import predict_logits

    with pytest.raises(ValueError, match="--clean-floor needs --init"):
        TrainConfig(data="d", out="o", clean_floor=0.005).resolved()

    def train(out, epochs, resume=False):
        trainer = Trainer(
            TrainConfig(
                data=str(dataset),
                out=str(out),
                init=str(run / "release"),
                epochs=epochs,
                batch_size=16,
                steps_per_epoch=2,
                val_fraction=0.2,
                cache_dir=str(cache_dir),
                threads=1,
                recipe="scratch",
                invert_prob=0.5,
                clean_floor=0.0,
                resume=resume,
            )
        )
        trainer.run()
        return trainer

    trainer = train(tmp_path / "floor", 4)
    start, _ = load_release(run / "release")  # the reference is the starting model's clean validation accuracy
    logits = predict_logits(start, trainer.val_set.images, trainer.preprocess)
    reference = float((logits.argmax(1) == torch.from_numpy(trainer.val_set.labels)).float().mean())
    train(tmp_path / "resumed", 2)
    train(tmp_path / "resumed", 4, resume=True)  # the saved epoch's floor is read back from the history
    for out in (tmp_path / "floor", tmp_path / "resumed"):
        summary = json.loads((out / "summary.json").read_text())
        assert summary["floor_reference_val_acc"] == pytest.approx(reference)
        history = rows(out / "epochs.csv")
        assert len(history) == 4
        for r in history:
            assert (r["meets_floor"] == "True") == (float(r["val_acc"]) >= reference - 1e-9)
        chosen = min(history, key=lambda r: (r["meets_floor"] != "True", float(r["select_loss"])))
        assert read_config(out / "release")["brainmri"]["epoch"] == int(chosen["epoch"]) + 1
        assert summary["best_meets_floor"] == (chosen["meets_floor"] == "True")
