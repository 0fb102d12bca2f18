"""TCGA-LGG as a fourth collection: the slice-label rule, the loader, the patient split, training with it and the
new-source yardstick (`train.py lgg-eval`)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import train as cli
from brainmri.data.lgg import (
    SLICE_PIXELS,
    LabelRule,
    load_lgg,
    load_lgg_masks,
    read_slices,
    split_patients,
    training_sites,
)
from brainmri.inference.preprocess import Preprocess
from helpers import CLASSES, TINY_SIZE, tiny_run


@pytest.fixture(scope="module")
def preprocess() -> Preprocess:
    return Preprocess(
        input_size=(3, TINY_SIZE, TINY_SIZE),
        interpolation="bicubic",
        crop_pct=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        content_crop=True,
    )


def test_label_rule():
    rule = LabelRule()
    one_percent = int(0.01 * SLICE_PIXELS) + 1
    assert rule.label(one_percent, 1, 20) == "glioma"  # a tumour is a tumour at either end too
    assert rule.label(one_percent - 2, 10, 20) is None  # a small lesion: neither class
    assert rule.label(0, 10, 20) == "notumor"
    assert rule.label(0, 4, 20) is None and rule.label(0, 5, 20) == "notumor"  # the first 20 % are skull top
    assert rule.label(0, 16, 20) == "notumor" and rule.label(0, 17, 20) is None
    assert "1 %" in rule.describe() and "60 %" in rule.describe()


def test_read_slices_refuses_bad_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="slice table"):
        read_slices(tmp_path)
    (tmp_path / "slices.csv").write_text("patient,site,slice\nA,CS,1\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        read_slices(tmp_path)
    (tmp_path / "slices.csv").write_text("patient,site,slice,slices_in_scan,sequences,mask_pixels\nA,XX,1,3,flair,0\n")
    with pytest.raises(ValueError, match="unknown sequence .* or site 'XX'"):
        read_slices(tmp_path)
    with pytest.raises(ValueError, match="unknown TCGA-LGG sites"):
        training_sites(["ZZ"])
    assert training_sites(["DU"]) == ["CS", "EZ", "FG"]


def test_load_lgg_labels_sequences_and_masks(lgg_root, preprocess, tmp_path):
    lgg = load_lgg(lgg_root, preprocess, CLASSES, cache_dir=tmp_path)
    # per patient: 3 tumour slices and the 8 empty ones of slices 5..16 of 20 (the middle 60 %)
    labelled = {"glioma": 3, "notumor": 8}
    per_sequence = {"flair": 6, "t1": 5, "t1c": 5}  # the last patient has FLAIR only
    for name, count in labelled.items():
        for sequence, patients in per_sequence.items():
            here = (lgg.sequence == sequence) & (lgg.images.labels == CLASSES.index(name))
            assert here.sum() == count * patients, (name, sequence)
    assert len(lgg) == sum(labelled.values()) * sum(per_sequence.values())
    assert all(path.startswith(patient) for path, patient in zip(lgg.images.paths, lgg.patient))
    assert set(lgg.site) == {"CS", "FG", "DU"} and (lgg.mask_share[lgg.images.labels == 0] >= 0.01).all()
    masks = load_lgg_masks(lgg, preprocess, cache_dir=tmp_path)
    assert masks.annotated.all()
    inside = masks.masks.reshape(len(lgg), -1).max(1) > 0
    assert (inside == (lgg.images.labels == CLASSES.index("glioma"))).all()
    bright = lgg.images.images[inside] > 180  # the mask lies on the blob the image shows
    assert (bright & (masks.masks[inside] > 0)).sum() > 0.7 * bright.sum()
    du = load_lgg(lgg_root, preprocess, CLASSES, sites=["DU"], sequences=("flair",), cache_dir=tmp_path)
    assert set(du.site) == {"DU"} and set(du.sequence) == {"flair"} and len(du) == 2 * 11
    assert (du.images.images == lgg.where(sites=["DU"], sequences=["flair"]).images.images).all()
    with pytest.raises(ValueError, match="the model knows"):
        load_lgg(lgg_root, preprocess, ["cat", "dog"], cache_dir=tmp_path)


def test_patients_stay_on_one_side_of_the_split(lgg_root, preprocess, tmp_path):
    lgg = load_lgg(lgg_root, preprocess, CLASSES, cache_dir=tmp_path)
    train, val = split_patients(lgg, 0.3, seed=3)
    assert not set(lgg.patient[train]) & set(lgg.patient[val])
    assert len(set(lgg.patient[val])) == 2 and len(train) + len(val) == len(lgg)
    again, _ = split_patients(lgg, 0.3, seed=3)
    assert (again == train).all()


@pytest.mark.slow  # trains, exports or serves
def test_training_with_lgg_holds_an_institution_out_and_judges_it(dataset, cache_dir, lgg_root, tmp_path, capsys):
    out = tmp_path / "run"
    options = "--recipe scratch --epochs 1 --no-evaluate --lgg-holdout DU --balance sources --framing-prob 0.5".split()
    args = tiny_run("train", dataset, out, cache_dir, "--lgg", str(lgg_root), *options, steps=2, val_fraction=0.3)
    assert cli.main(args) == 0
    with open(out / "split.csv") as handle:
        rows = list(csv.DictReader(handle))
    lgg_rows = [r for r in rows if r["path"].startswith("tcga-lgg/")]
    assert lgg_rows and not any("_DU_" in r["path"] for r in rows)
    sides = {side: {r["path"].split("/")[1] for r in lgg_rows if r["split"] == side} for side in ("train", "val")}
    assert sides["train"] and sides["val"] and not sides["train"] & sides["val"]
    with open(out / "epochs.csv") as handle:
        epoch = next(csv.DictReader(handle))
    assert 0 <= float(epoch["val_acc_kaggle"]) <= 1 and 0 <= float(epoch["val_acc_lgg"]) <= 1
    # the weights carry TCGA-LGG's terms in the release itself (timm's pretrained_cfg), as the card says
    pretrained_cfg = json.loads((out / "release" / "config.json").read_text())["pretrained_cfg"]
    assert pretrained_cfg["license"] == "cc-by-nc-sa-4.0"

    from brainmri.data.folders import load_run_split  # calibrate and the other run readers see the same split

    train, val = load_run_split(out)
    assert len(train) + len(val) == len(rows)
    assert sum(p.startswith("tcga-lgg/") for p in val.paths) == sum(r["split"] == "val" for r in lgg_rows)

    capsys.readouterr()
    assert (
        cli.main(
            [
                "lgg-eval",
                "--checkpoint",
                str(out / "release"),
                "--lgg",
                str(lgg_root),
                "--sites",
                "DU",
                "--out",
                str(out / "du"),
                "--cache-dir",
                str(cache_dir),
            ]
        )
        == 0
    )
    report = json.loads((out / "du" / "lgg.json").read_text())
    assert (
        report["sites"] == ["DU"] and report["patients"] == 2 and report["n"] == 11 * 3 + 11
    )  # 11 labelled slices each; one has FLAIR only
    assert report["by_sequence"]["flair"]["glioma"]["n"] == 6 and report["by_sequence"]["t1"]["notumor"]["n"] == 8
    assert sum(report["all"]["answers"].values()) == report["n"]
    with open(out / "du" / "lgg-slices.csv") as handle:
        slices = list(csv.DictReader(handle))
    assert len(slices) == report["n"] and {s["site"] for s in slices} == {"DU"}
    right = np.mean([s["label"] == s["predicted"] for s in slices])
    assert report["all"]["accuracy"] == pytest.approx(right)
    ok = [s for s in slices if s["verdict"] == "ok"]
    assert report["all"]["ok_share"] == pytest.approx(len(ok) / len(slices))
    assert 0 <= report["pointing_game_glioma"] <= 1 and "flair" in report["pointing_by_sequence"]
    assert "| flair, glioma | 6 |" in capsys.readouterr().out

    # the card: TCGA-LGG credited, the weights' licence non-commercial, the new-source rows from the saved figures
    metrics = out / "metrics"
    metrics.mkdir()
    (metrics / "lgg-heldout-institution.json").write_text(json.dumps(report))
    assert cli.main(["card", "--checkpoint", str(out / "release"), "--metrics", str(metrics), "--run", str(out)]) == 0
    card = (out / "release" / "README.md").read_text()
    assert "license: cc-by-nc-sa-4.0" in card and "Buda, Saha and Mazurowski" in card and "non-commercial" in card
    flair = report["by_sequence"]["flair"]["glioma"]["accuracy"]
    assert (
        f"| TCGA-LGG, institution held out (DU: 2 patients, 44 slices; this recipe trained on the other "
        f"institutions) | {100 * flair:.2f} % |" in card
    )
    from brainmri.evaluation.report import newsource_markdown

    sha = report["weights_sha256"]
    french = newsource_markdown(report, report, lang="fr", weights_sha256=sha)
    assert "établissement tenu à l'écart (DU : 2 patients, 44 coupes" in french
    assert "; le modèle fourni, entraîné sans TCGA-LGG)" in french  # the record judged these very weights
    other = newsource_markdown(None, report, weights_sha256="0" * 64)  # another model's: the name it was given
    assert f"; {report['model']}, trained without TCGA-LGG)" in other and "bundled" not in other
    rows = [line.split(" | ") for line in french.splitlines()[2:4]]
    french_flair = f"{100 * flair:.2f}\u202f%".replace(".", ",")  # as French writes it
    assert [row[1] for row in rows] == [french_flair] * 2 and newsource_markdown(None, None) == ""


def test_a_card_without_tcga_lgg_keeps_the_code_licence(tiny_release, tmp_path):
    import shutil

    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    assert cli.main(["card", "--checkpoint", str(release), "--metrics", str(tmp_path / "none")]) == 0
    card = (release / "README.md").read_text()
    assert "license: apache-2.0" in card and "TCGA-LGG" not in card


REAL_LGG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tcga-lgg"


@pytest.mark.parametrize("written_as", ["nifti", "dicom"])
def test_a_real_tcga_lgg_scan_goes_through_the_scan_path(bundled, tmp_path, written_as):
    """A patient's FLAIR scan written as a NIfTI volume or a DICOM series (files in shuffled order): the slices come
    back in order and orientation, only the ends are skipped, every tumour slice is read, and each read slice gets
    exactly the single-image answer."""
    if not REAL_LGG.is_dir():
        pytest.skip("TCGA-LGG is not beside the repository")
    from brainmri.data.lgg import scan
    from helpers import dicom_series, nifti_bytes

    patient = "TCGA_CS_4941_19960909"
    slices = scan(REAL_LGG, patient)
    table = [s for s in read_slices(REAL_LGG) if s.patient == patient]
    assert len(slices) == table[0].slices_in_scan == len(table)
    if written_as == "nifti":
        voxels = np.stack([np.flipud(np.fliplr(s)).T for s in slices], axis=-1)  # X x Y x Z as the slices show it
        path = tmp_path / "flair.nii.gz"
        path.write_bytes(nifti_bytes(voxels, gz=True))
    else:
        path = []
        for i, data in enumerate(dicom_series(slices, Modality="MR", SeriesDescription="AX FLAIR")):
            path.append(tmp_path / f"{(i * 7919) % 1000:04d}.dcm")  # the file names in another order
            path[-1].write_bytes(data)
    predictor = bundled
    result = predictor.predict_volume(path)
    assert [s.index for s in result.slices] == list(range(len(slices)))
    for got, expected in zip(result.volume.slices, slices):  # the same picture (the volume has one grey window)
        assert np.corrcoef(got.ravel().astype(float), expected.ravel().astype(float))[0, 1] > 0.99
    skipped = [s.index for s in result.slices if s.skipped]
    assert all(i < 4 or i >= len(slices) - 4 for i in skipped)  # only the skull top and base
    tumour = {s.number - 1 for s in table if s.mask_pixels >= 0.01 * SLICE_PIXELS}
    assert tumour and tumour <= {s.index for s in result.read()}
    for s in result.read()[::4]:
        probabilities, verdict = predictor.screen(result.volume.slices[s.index])
        assert s.probabilities == pytest.approx(probabilities, abs=1e-5)
        if written_as == "dicom" and verdict.status != "not_mri":  # the header names FLAIR: that reason comes first
            assert (s.verdict.status, s.verdict.code) == ("uncertain", "sequence")
        else:
            assert (s.verdict.status, s.verdict.code) == (verdict.status, verdict.code)


def test_judge_holds_back_answers_never_seen_on_flair():
    from brainmri.inference.verdict import judge
    from brainmri.text import reason

    common = dict(colourfulness=0.0, pixel_std=40.0, distance=None, feature_threshold=None, dark_border=0.9)
    meningioma = {"glioma": 0.01, "meningioma": 0.97, "notumor": 0.01, "pituitary": 0.01}
    verdict = judge(meningioma, **common, flair_look=0.8, flair_classes=("glioma", "notumor"))
    assert (verdict.status, verdict.code) == ("uncertain", "looks_flair")
    assert "meningioma" in reason(verdict.code, verdict.params).lower()
    assert "méningiome" in reason(verdict.code, verdict.params, "fr").lower()
    glioma = {"glioma": 0.97, "meningioma": 0.01, "notumor": 0.01, "pituitary": 0.01}
    assert judge(glioma, **common, flair_look=0.8, flair_classes=("glioma", "notumor")).ok
    assert judge(meningioma, **common, flair_look=None, flair_classes=("glioma", "notumor")).ok


def test_feature_look_fits_scores_and_travels_in_the_config():
    from brainmri.inference.sequence_check import FeatureLook, fit_feature_look

    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, 6))
    flair = np.arange(120) % 3 == 0
    features[flair, 2] += 3.0
    patients = np.repeat(np.arange(12), 10)
    look = fit_feature_look(features, flair, patients, fitted_on="synthetic")
    assert look.cross_validation["auc"] > 0.95 and look.cross_validation["flair_caught"] > 0.9
    assert (look.scores(features[flair]) > 0.5).mean() > 0.9 and (look.scores(features[~flair]) < 0.5).mean() > 0.9
    again = FeatureLook.from_config({"flair_check": look.to_config()}, width=6)
    assert again == look and FeatureLook.from_config({"flair_check": look.to_config()}, width=5) is None
    assert FeatureLook.from_config({}) is None
    with pytest.raises(ValueError, match="both FLAIR and other"):
        fit_feature_look(features, np.ones(120, bool), patients)


@pytest.mark.slow  # trains, exports or serves
def test_flair_check_command_writes_a_check_the_predictor_uses(
    tiny_release, lgg_root, dataset, cache_dir, tmp_path, capsys
):
    import shutil

    from brainmri import Predictor

    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    assert (
        cli.main(
            [
                "flair-check",
                "--checkpoint",
                str(release),
                "--lgg",
                str(lgg_root),
                "--exclude-sites",
                "DU",
                "--data",
                str(dataset),
                "--threshold",
                "0.0",
                "--cache-dir",
                str(cache_dir),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out.split("\nwritten to")[0])
    assert report["held_out"]["sites"] == ["DU"] and report["held_out"]["flair_flagged"] == 1.0
    assert set(report["kaggle_training_flagged"]) == set(CLASSES) and "CS, EZ, FG" not in report  # sites in fitted_on
    config = json.loads((release / "config.json").read_text())
    assert "CS, EZ, FG" in config["flair_check"]["fitted_on"]
    predictor = Predictor.from_pretrained(release)
    assert predictor.flair_check is not None
    judged = 0
    for path in sorted((dataset / "Testing").rglob("*.png"))[:12]:  # threshold 0: every slice looks like FLAIR
        probabilities, verdict = predictor.screen(path)
        answer = max(probabilities, key=probabilities.get)
        if verdict.status != "not_mri":
            assert (verdict.code == "looks_flair") == (answer in ("meningioma", "pituitary")), (answer, verdict)
            judged += 1
    assert judged >= 3
