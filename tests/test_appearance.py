"""The T2-look check: features, fitting, the verdict's two reasons, the fitting command and the page's use of it."""

import csv
import json
import shutil

import numpy as np
import pytest

import train as cli
from brainmri import Predictor, text
from brainmri.evaluation.selective import verdict_report
from brainmri.inference.release import add_files
from brainmri.inference.sequence_check import (
    FEATURE_NAMES,
    SequenceCheck,
    fit_sequence_check,
    interior_features,
    invert_inside_head,
)
from brainmri.inference.verdict import judge
from helpers import tiny_options


def head_slice(t2: bool, rng: np.random.Generator, size: int = 112) -> np.ndarray:
    """A head: a skin ring, brain tissue and fluid (ventricles, a rim of sulci). T1: bright skin, mid tissue,
    dark fluid; T2: darker skin, darker tissue, bright fluid."""
    yy, xx = np.indices((size, size))
    c = size / 2 + rng.normal(0, 2, 2)
    radius = size * rng.uniform(0.36, 0.44)
    d = np.hypot(yy - c[0], xx - c[1]) / radius
    skin, tissue, fluid = (120, 60, 200) if t2 else (220, 130, 35)
    image = np.where(d < 1.0, skin, 0).astype(np.float32)
    image[d < 0.85] = tissue
    image[(d > 0.70) & (d < 0.76)] = fluid  # sulci
    for dy in (-0.12, 0.12):  # two ventricles
        image[np.hypot(yy - c[0] - dy * radius, xx - c[1]) < 0.10 * radius] = fluid
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_invert_inside_head_keeps_the_background_black():
    g = np.zeros((64, 64), np.uint8)
    g[16:48, 16:48] = 200
    g[30:34, 30:34] = 40
    out = invert_inside_head(g)
    assert out[0, 0] == 0 and out[20, 20] == 55 and out[31, 31] == 215 and out.dtype == np.uint8


def test_features_separate_t1_from_t2_and_the_fitted_check_round_trips():
    rng = np.random.default_rng(0)
    labels = np.array([i % 3 == 0 for i in range(60)])
    features = np.stack([interior_features(head_slice(t2, rng)) for t2 in labels])
    assert features.shape == (60, len(FEATURE_NAMES)) and np.isfinite(features).all()
    check = fit_sequence_check(features, labels, groups=np.where(labels, "a", "b"), repeats=2, fitted_on="synthetic")
    assert check.cross_validation["auc"] > 0.95 and check.cross_validation["t2_caught"] > 0.9
    assert (
        set(check.cross_validation["flagged_by_group"]) == {"a", "b"} and "random_sample" not in check.cross_validation
    )
    drawn = np.arange(60) < 45  # the last 15 rows "chosen" rather than drawn: reported apart
    chosen = fit_sequence_check(features, labels, repeats=2, random_rows=drawn).cross_validation
    assert chosen["random_sample"]["n"] == 45 and chosen["random_sample"]["t2"] == int(labels[:45].sum())
    assert check.score(head_slice(True, rng)) > 0.5 > check.score(head_slice(False, rng))
    again = SequenceCheck.from_config({"sequence_check": json.loads(json.dumps(check.to_config()))})
    assert again == check
    assert SequenceCheck.from_config({}) is None
    assert SequenceCheck.from_config({"sequence_check": {**check.to_config(), "features": ["other"]}}) is None
    with pytest.raises(ValueError, match="both"):
        fit_sequence_check(features, np.zeros(60, bool))
    assert np.all(interior_features(np.zeros((112, 112), np.uint8)) == 0)  # nothing in it: no crash


def test_the_verdict_says_why_a_t2_looking_slice_is_uncertain():
    base = dict(colourfulness=0.0, pixel_std=30.0, distance=None, feature_threshold=None)
    notumor = {"glioma": 0.01, "meningioma": 0.01, "notumor": 0.97, "pituitary": 0.01}
    glioma = {"glioma": 0.97, "meningioma": 0.01, "notumor": 0.01, "pituitary": 0.01}
    assert judge(notumor, **base).ok  # no check: as before
    v = judge(notumor, **base, t2_look=0.8, inverted="notumor")
    assert (v.status, v.code) == ("uncertain", "looks_t2_notumor") and "80%" in v.reason
    assert judge(notumor, **base, t2_look=0.8, inverted="notumor", t2_notumor=False).ok
    v = judge(glioma, **base, t2_look=0.8, inverted="notumor")
    assert v.code == "looks_t2_flip" and '"No tumour"' in v.reason
    assert "« Pas de tumeur »" in v.reason_in("fr")
    assert judge(glioma, **base, t2_look=0.8, inverted="glioma").ok  # a tumour found in T2 contrast stands
    # the DICOM header outranks the pixels; an image that is not an MRI stays "not_mri"
    assert judge(notumor, **base, t2_look=0.8, inverted="notumor", sequence="T2").code == "sequence"
    assert judge(notumor, **{**base, "colourfulness": 1.0}, t2_look=0.8).status == "not_mri"
    for lang in text.LANGUAGES:
        assert {"looks_t2_notumor", "looks_t2_flip"} <= set(text.catalogue(lang)["reasons"])


def check_command(release, dataset, cache_dir) -> list[str]:
    """``train.py sequence-check`` on ``release`` with the synthetic data."""
    return ["sequence-check", "--checkpoint", str(release), "--data", str(dataset), "--cache-dir", str(cache_dir)]


@pytest.fixture()
def release_with_check(trained_run, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(trained_run / "release", release)
    return release


@pytest.mark.slow  # trains, exports or serves
def test_sequence_check_command_fits_into_the_release_and_the_page_uses_it(
    release_with_check, dataset, cache_dir, tmp_path, capsys
):
    files = sorted(p.relative_to(dataset).as_posix() for p in (dataset / "Training").rglob("*.png"))
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:  # synthetic "T2": the tumour-free slices (no blob)
        writer = csv.writer(handle)
        writer.writerow(["file", "sequence"])
        writer.writerows((f, "T2" if "/notumor/" in f else "other") for f in files)
    base = check_command(release_with_check, dataset, cache_dir)
    assert cli.main(base + ["--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "cross-validated" in out and "flagged among all Training images" in out
    config = json.loads((release_with_check / "config.json").read_text())
    check = SequenceCheck.from_config(config)
    assert (
        check is not None
        and check.notumor_uncertain
        and config["sequence_check"]["cross_validation"]["n"] == len(files)
    )
    predictor = Predictor.from_pretrained(release_with_check, backend="torch")
    assert predictor.sequence_check == check
    assert cli.main(["card", "--checkpoint", str(release_with_check), "--metrics", str(tmp_path / "no-metrics")]) == 0
    card = (release_with_check / "README.md").read_text()
    assert "## T2-look check" in card and f"AUC {check.cross_validation['auc']:.3f}" in card
    fitted = [predictor.prepare(dataset / f) for f in files[:8]]
    looks = predictor.t2_looks(fitted)
    for (score, inverted), f in zip(looks, fitted):
        if score is None:
            assert inverted is None and check.score(f) < check.threshold
        else:
            assert score >= check.threshold and inverted in predictor.labels
    # a threshold of 0: every slice looks T2; a "no tumour" answer is then never "ok"
    add_files(release_with_check, {}, config_updates={"sequence_check": {**config["sequence_check"], "threshold": 0.0}})
    predictor = Predictor.from_pretrained(release_with_check, backend="torch")
    for probabilities, verdict in predictor.screen_batch([dataset / f for f in files[:12]]):
        if verdict.status != "not_mri":
            assert not (verdict.ok and max(probabilities, key=probabilities.get) == "notumor")
            assert verdict.ok or verdict.code in {"looks_t2_notumor", "looks_t2_flip", "unsure"}


@pytest.mark.slow  # trains, exports or serves
def test_sequence_check_command_refuses_bad_labels(release_with_check, dataset, cache_dir, tmp_path, capsys):
    base = check_command(release_with_check, dataset, cache_dir)
    (tmp_path / "bad.csv").write_text("path,kind\nx,y\n")
    assert cli.main(base + ["--labels", str(tmp_path / "bad.csv")]) != 0
    assert "file,sequence" in capsys.readouterr().err
    (tmp_path / "missing.csv").write_text("file,sequence\nTraining/glioma/nope.png,T2\n")
    assert cli.main(base + ["--labels", str(tmp_path / "missing.csv")]) != 0
    assert "not Training images" in capsys.readouterr().err
    (tmp_path / "one.csv").write_text("file,sequence\nTraining/glioma/Tr-glioma-001.png,other\n")
    assert cli.main(base + ["--labels", str(tmp_path / "one.csv")]) != 0
    assert "both T2 and other" in capsys.readouterr().err
    assert cli.main(base + ["--exclude-collection", "sartaj"]) != 0
    assert "--exclude-collection needs --origins" in capsys.readouterr().err
    assert "sequence_check" not in json.loads((release_with_check / "config.json").read_text())


@pytest.mark.slow  # trains, exports or serves
def test_sequence_check_for_a_held_out_run_leaves_its_collection_out(release_with_check, dataset, cache_dir, tmp_path):
    files = sorted(p.relative_to(dataset).as_posix() for p in (dataset / "Training").rglob("*.png"))
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(
            [("file", "sequence")] + [(f, "T2" if "/notumor/" in f else "other") for f in files]
        )
    with open(tmp_path / "origins.csv", "w", newline="") as handle:  # every other file from sartaj
        csv.writer(handle).writerows(
            [("file", "origin")] + [(f, "sartaj" if i % 2 else "figshare") for i, f in enumerate(files)]
        )
    base = check_command(release_with_check, dataset, cache_dir)
    held_out = ["--labels", str(tmp_path / "labels.csv"), "--origins", str(tmp_path / "origins.csv")]
    assert cli.main(base + held_out + ["--exclude-collection", "sartaj"]) == 0
    block = json.loads((release_with_check / "config.json").read_text())["sequence_check"]
    assert block["cross_validation"]["n"] == (len(files) + 1) // 2 and "none from sartaj" in block["fitted_on"]


@pytest.mark.slow  # trains, exports or serves
def test_verdict_report_counts_codes_and_missed_tumours(trained_run, dataset):
    predictor = Predictor.from_pretrained(trained_run / "release", backend="torch")
    files = (
        sorted((dataset / "Testing" / "glioma").glob("*.png"))[:4]
        + sorted((dataset / "Testing" / "notumor").glob("*.png"))[:2]
    )
    labels = np.array([predictor.labels.index("glioma")] * 4 + [predictor.labels.index("notumor")] * 2)
    plain = verdict_report(predictor, files, labels)
    assert plain["tumours"] == 4 and sum(plain["codes"].values()) == 6 and plain["sequence_check"] is False
    assert 0 <= plain["tumours_ok_as_notumor"] <= 1
    inverted = verdict_report(predictor, files, labels, transform=invert_inside_head)
    assert inverted["n"] == 6 and sum(inverted["counts"].values()) == 6


@pytest.mark.slow  # trains, exports or serves
def test_recalibrating_a_release_keeps_its_sequence_check(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    block = SequenceCheck((0.0,) * 12, (1.0,) * 12, (0.5,) * 12, -1.0, fitted_on="test").to_config()
    add_files(run / "release", {}, config_updates={"sequence_check": block})
    assert cli.main(["calibrate", "--run", str(run)]) == 0
    assert SequenceCheck.from_config(json.loads((run / "release" / "config.json").read_text())).fitted_on == "test"


@pytest.mark.slow  # trains, exports or serves
def test_a_run_with_inversion_is_validated_and_chosen_on_inverted_slices_too(trained_run, dataset, cache_dir, tmp_path):
    """Fine-tuning a release with contrast inversion (--init, --invert-prob): each epoch is validated on the
    split as it is and inverted, and the best epoch is the one with the lowest mean of the two losses."""
    out = tmp_path / "inverted"
    start = ["train", "--data", str(dataset), "--out", str(out), "--init", str(trained_run / "release")]
    options = "--recipe scratch --epochs 2 --lr 1e-4 --warmup-epochs 1 --invert-prob 0.5 --no-evaluate".split()
    assert cli.main(start + tiny_options(str(cache_dir), steps=2) + options) == 0
    with open(out / "epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        assert 0 <= float(row["val_acc_inverted"]) <= 1
        assert float(row["select_loss"]) == pytest.approx(
            (float(row["val_loss"]) + float(row["val_loss_inverted"])) / 2
        )
    best = min(rows, key=lambda r: float(r["select_loss"]))
    chosen = json.loads((out / "release" / "config.json").read_text())["brainmri"]
    assert chosen["epoch"] == int(best["epoch"]) + 1 and chosen["val_loss"] == pytest.approx(float(best["val_loss"]))
