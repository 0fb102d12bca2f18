"""Leave-one-collection-out runs, tumour masks through the preprocessing, lesion-aware augmentation, localisation."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train as cli
from brainmri.commands.heldout import _training_stages
from brainmri.commands.training import add_train_parser
from brainmri.data.augment import AugmentConfig, augment_batch, paste_lesions
from brainmri.data.collections import plan_holdout, read_origins
from brainmri.data.folders import load_folder
from brainmri.evaluation.localisation import localisation_scores, widen
from brainmri.inference.preprocess import GammaFraming, Preprocess
from helpers import TINY_ARCH, TINY_SIZE, tiny_run


def _origin(path: str) -> str:
    """Synthetic collections: even-numbered tumour files 'figshare', odd 'sartaj'; notumor even 'br35h'."""
    name = Path(path).stem
    number = int(name.split("-")[-1]) if name.split("-")[-1].isdigit() else 1
    if "/notumor/" in path:
        return "br35h" if number % 2 == 0 else "sartaj"
    return "figshare" if number % 2 == 0 else "sartaj"


@pytest.fixture(scope="module")
def collections(dataset, tmp_path_factory):
    """An origins CSV for the synthetic dataset and masks (the bright blob) for its 'figshare' images."""
    folder = tmp_path_factory.mktemp("collections")
    masks = folder / "masks"
    rows = []
    for path in sorted(dataset.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(dataset).as_posix()
        rows.append((rel, _origin(rel)))
        if rows[-1][1] == "figshare" and path.name != "corrupt.jpg":
            target = masks / Path(rel).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            gray = np.asarray(Image.open(path).convert("L"))
            Image.fromarray(((gray > 180) * 255).astype(np.uint8)).save(target)
    with open(folder / "origins.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "origin"])
        writer.writerows(rows)
    return folder / "origins.csv", masks


def test_read_origins_refuses_bad_files(tmp_path):
    (tmp_path / "a.csv").write_text("path,where\nx,figshare\n")
    with pytest.raises(ValueError, match="file,origin"):
        read_origins(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("file,origin\nTraining/glioma/x.jpg,mars\n")
    with pytest.raises(ValueError, match="mars"):
        read_origins(tmp_path / "b.csv")
    with pytest.raises(FileNotFoundError):
        read_origins(tmp_path / "missing.csv")


def test_holdout_keeps_the_collection_out_and_drops_its_duplicates(dataset, cache_dir, collections):
    preprocess = Preprocess.from_config(
        {
            "input_size": (3, TINY_SIZE, TINY_SIZE),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "mean": (0.5,) * 3,
            "std": (0.5,) * 3,
        },
        content_crop=True,
    )
    training = load_folder(dataset / "Training", preprocess, cache_dir=cache_dir)
    testing = load_folder(dataset / "Testing", preprocess, cache_dir=cache_dir)
    origins = read_origins(collections[0])
    # the planted exact copy of Tr-glioma-001 (sartaj) is in Testing as planted-exact.png: call it figshare
    origins["Testing/glioma/planted-exact.png"] = "figshare"
    plan = plan_holdout(training, testing, origins, "figshare")
    trained = [training.paths[i] for i in plan.train_index]
    assert all(_origin(f"Training/{p}") != "figshare" for p in trained)
    assert "glioma/Tr-glioma-001.png" in plan.dropped_duplicates and "glioma/Tr-glioma-001.png" not in trained
    assert all(_origin(p) == "figshare" or p.endswith("planted-exact.png") for p in plan.heldout.paths)
    assert {p.split("/")[0] for p in plan.heldout.paths} == {"Training", "Testing"}
    assert plan.summary()["heldout_images"] == len(plan.heldout)
    with pytest.raises(ValueError, match="unknown collection"):
        plan_holdout(training, testing, origins, "mars")


def test_mask_follows_the_image_through_crop_pad_and_resize():
    gray = np.zeros((120, 200), np.uint8)
    gray[20:100, 40:180] = 70  # the head, off-centre and not square
    gray[30:50, 60:80] = 240  # the tumour
    mask = (gray == 240).astype(np.uint8) * 255
    for crop in (True, False):
        preprocess = Preprocess.from_config(
            {
                "input_size": (3, 64, 64),
                "interpolation": "bilinear",
                "crop_pct": 1.0,
                "mean": (0.5,) * 3,
                "std": (0.5,) * 3,
            },
            content_crop=crop,
        )
        fitted, fitted_mask = preprocess.fit(gray), preprocess.fit_mask(gray, mask)
        assert set(np.unique(fitted_mask)) <= {0, 255}
        bright = fitted > (240 + 70) / 2  # the tumour's edge: halfway between tumour and tissue
        inside = fitted_mask > 0
        assert inside.sum() > 0 and (bright & inside).sum() / (bright | inside).sum() >= 0.9
    with pytest.raises(ValueError, match="mask of size"):
        preprocess.fit_mask(gray, mask[:10])


def test_gamma_framing_crops_as_the_head_crop_would_after_a_gamma_change():
    """A faint rim below the crop's threshold joins the box once gamma 0.6 brightens it; gamma 1.6 drops it."""
    gray = np.zeros((160, 160), np.uint8)
    gray[20:140, 20:140] = 12  # faint: below a tenth of the bright end (the 99th percentile, 160)
    gray[40:120, 40:120] = 160
    gray[60:70, 60:70] = 255
    preprocess = Preprocess.from_config(
        {
            "input_size": (3, 64, 64),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "mean": (0.5,) * 3,
            "std": (0.5,) * 3,
        },
        content_crop=True,
    )
    brighter, darker = GammaFraming.of(preprocess, 0.6), GammaFraming.of(preprocess, 1.6)
    top, bottom, left, right = preprocess.box(gray)
    assert 30 <= top < 40 and 120 < bottom <= 130  # the head only, with its margin
    assert brighter.box(gray) == preprocess.box(np.clip(255 * (gray / 255) ** 0.6, 0, 255).astype(np.uint8))
    b_top, b_bottom, *_ = brighter.box(gray)
    assert b_top < 20 and b_bottom > 140  # the rim is in
    assert darker.box(gray) == preprocess.box(gray)  # darker: nothing new crosses the threshold here
    assert GammaFraming.of(preprocess, 1.0).box(gray) == preprocess.box(gray)
    assert not np.array_equal(brighter.fit(gray), preprocess.fit(gray))  # smaller head in the same input size
    assert brighter.fit(gray).shape == preprocess.fit(gray).shape
    assert brighter.fit(gray).max() == preprocess.fit(gray).max()  # intensities stay the slice's own
    mask = np.zeros_like(gray)
    mask[60:70, 60:70] = 255
    assert (brighter.fit_mask(gray, mask) > 0).sum() < (preprocess.fit_mask(gray, mask) > 0).sum()
    assert str(brighter) != str(preprocess) != str(darker)  # the decoded cache keeps them apart
    uncropped = dataclasses.replace(preprocess, content_crop=False)
    assert GammaFraming.of(uncropped, 0.6).box(gray) == (0, 160, 0, 160)  # no head crop: nothing to frame


def test_framing_swaps_slices_and_their_masks_for_the_framed_copies(dataset, cache_dir, collections, tmp_path):
    from dataclasses import replace

    from brainmri.io.images import load_grayscale
    from brainmri.training.trainer import TrainConfig, Trainer

    _, masks = collections
    common = dict(
        data=str(dataset),
        arch=TINY_ARCH,
        pretrained=False,
        image_size=TINY_SIZE,
        epochs=1,
        batch_size=16,
        cache_dir=str(cache_dir),
        recipe="scratch",
        masks=str(masks),
        seg_weight=1.0,
    )
    trainer = Trainer(TrainConfig(out=str(tmp_path / "a"), framing_prob=1.0, **common))
    trainer.setup()
    assert trainer.framed_images.shape == (2, *trainer.train_images.shape)
    assert trainer.framed_masks.shape == trainer.framed_images.shape
    # real copies: each is its slice cropped as after gamma 0.6 and 1.6 (the scratch recipe's range)
    for row in (0, len(trainer.train_set) - 1):
        gray = load_grayscale(trainer.train_set.root / trainer.train_set.paths[row])
        for view, box_gamma in enumerate((0.6, 1.6)):
            expected = GammaFraming.of(trainer.preprocess, box_gamma).fit(gray)
            assert np.array_equal(trainer.framed_images[view, row].numpy(), expected)
    assert not torch.equal(trainer.framed_images[0], trainer.train_images)  # the brighter crop moved somewhere

    trainer.aug = AugmentConfig.named("none")  # so a batch shows exactly which copy it took
    trainer.framed_images = torch.stack(
        [torch.full_like(trainer.train_images, 7), torch.full_like(trainer.train_images, 200)]
    )
    trainer.framed_masks = torch.stack(
        [torch.zeros_like(trainer.train_images), torch.full_like(trainer.train_images, 255)]
    )
    mean, std = (
        torch.tensor(trainer.preprocess.mean).view(1, 3, 1, 1),
        torch.tensor(trainer.preprocess.std).view(1, 3, 1, 1),
    )
    seen = set()
    for x, _, batch_masks, _ in trainer._batches(epoch=0):
        pixels = (x.float() * std + mean).mul(255).round()[:, 0]
        for image, mask in zip(pixels, batch_masks[:, 0]):
            value = int(image.flatten()[0])
            assert value in (7, 200) and torch.all(image == value)  # every slice swapped (framing_prob 1)
            assert torch.all(mask == (1.0 if value == 200 else 0.0))  # its mask is the same copy's
            seen.add(value)
    assert seen == {7, 200}  # both ends of the gamma range

    plain = Trainer(TrainConfig(out=str(tmp_path / "b"), **common))
    plain.setup()
    assert plain.framed_images is None and plain.framed_masks is None
    with pytest.raises(ValueError, match="gamma range"):
        Trainer(TrainConfig(out=str(tmp_path / "c"), framing_prob=0.5, **{**common, "recipe": "report"})).setup()
    with pytest.raises(ValueError, match="--framing-prob"):
        replace(TrainConfig(data="d", out="o"), framing_prob=1.5).resolved()
    parser = __import__("argparse").ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    assert (
        vars(parser.parse_args(["train", "--data", "d", "--out", "o", "--framing-prob", "0.5"]))["framing_prob"] == 0.5
    )


def test_masks_follow_the_augmentation_geometry():
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(8, 1, 32, 32)
    images[:, :, 4:12, 18:28] = 1.0
    cfg = AugmentConfig.named("strong")
    out, masks = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=20, brightness=0, contrast=0),
        torch.Generator().manual_seed(1),
        masks=images.clone(),
    )
    assert torch.allclose(out, masks, atol=1e-6)
    plain = augment_batch(images.clone(), cfg, torch.Generator().manual_seed(2))
    with_masks, _ = augment_batch(images.clone(), cfg, torch.Generator().manual_seed(2), masks=images.clone())
    assert torch.equal(plain, with_masks)  # same random draws with or without masks
    del gen


def test_inversion_and_curves():
    images = torch.zeros(4, 1, 16, 16)
    images[:, :, 4:12, 4:12] = torch.linspace(0.2, 0.9, 8).view(1, 1, 1, 8)
    inverted = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=0, hflip=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0, invert_prob=1.0),
        torch.Generator().manual_seed(0),
    )
    assert torch.allclose(inverted[:, :, 6, 4:12], 1 - images[:, :, 6, 4:12]) and inverted[:, :, 0, 0].abs().max() == 0
    curved = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=0, hflip=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0, curve_prob=1.0),
        torch.Generator().manual_seed(0),
    )
    row = curved[:, 0, 6, 4:12]
    assert (row[:, 1:] >= row[:, :-1]).all() and not torch.allclose(row, images[:, 0, 6, 4:12])
    assert curved[:, :, 0, 0].abs().max() == 0  # background stays black


def test_paste_lesions_moves_tumour_mask_and_class():
    images = torch.full((3, 1, 16, 16), 0.3)
    masks = torch.zeros(3, 1, 16, 16)
    labels = torch.tensor([2, 0, 2])
    donor = torch.full((1, 1, 16, 16), 0.3)
    donor[:, :, 5:9, 5:9] = 0.9
    donor_mask = (donor > 0.5).float()
    recipients = torch.tensor([True, False, False])
    out, out_masks, out_labels = paste_lesions(images, masks, labels, recipients, donor, donor_mask, torch.tensor([3]))
    assert out_labels.tolist() == [3, 0, 2]
    assert torch.equal(out_masks[0], donor_mask[0]) and out_masks[1:].abs().max() == 0
    scaled = 0.9 * 0.3 / ((0.3 * 240 + 0.9 * 16) / 256)  # the donor brought to the recipient's brightness
    assert (
        out[0, 0, 7, 7].item() == pytest.approx(scaled, rel=1e-5)
        and torch.allclose(out[0, 0, 0, 0], torch.tensor(0.3))
        and torch.equal(out[1:], images[1:])
    )
    with pytest.raises(ValueError, match="recipients"):
        paste_lesions(images, masks, labels, torch.tensor([True, True, False]), donor, donor_mask, torch.tensor([3]))


def test_localisation_scores():
    masks = np.zeros((2, 10, 10), np.uint8)
    masks[:, 2:4, 2:4] = 255
    heat = np.zeros((2, 10, 10), np.float32)
    heat[0, 3, 3] = 1.0  # peak on the tumour
    heat[1] = 1.0 / 100
    heat[1, 8, 8] = 1.0  # peak far away, energy spread
    scores = localisation_scores(heat, masks, widen_px=1)
    assert scores["pointing"].tolist() == [True, False]
    assert scores["energy_inside"][0] == pytest.approx(1.0) and scores["energy_ratio"][0] == pytest.approx(25.0)
    assert scores["energy_inside"][1] == pytest.approx(0.04 / 1.99, rel=1e-4)
    assert widen(masks[:1] > 0, 1).sum() == 16


@pytest.mark.slow  # trains, exports or serves
@pytest.mark.slow
def test_crossval_trains_without_the_collection_and_reports_it(dataset, cache_dir, collections, tmp_path, capsys):
    origins, masks = collections
    out = tmp_path / "cv"
    args = tiny_run(
        "crossval",
        str(dataset),
        str(out),
        str(cache_dir),
        "--recipe",
        "scratch",
        "--epochs",
        "2",
        "--origins",
        str(origins),
        "--holdout",
        "sartaj",
        "--masks",
        str(masks),
        "--seg-weight",
        "1.0",
        "--cam-weight",
        "1.0",
        "--cam-target",
        "centres",
        "--paste-prob",
        "0.5",
        "--invert-prob",
        "0.2",
        "--curve-prob",
        "0.2",
        "--output-stride",
        "16",
        "--framing-prob",
        "0.5",
        steps=2,
    )
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out sartaj" in printed and "pointing game" in printed
    metrics = json.loads((out / "heldout" / "metrics.json").read_text())
    held = metrics["heldout"]
    assert held["n"] == metrics["meta"]["holdout"]["heldout_images"] > 0
    assert sum(map(sum, held["confusion_matrix"])) == held["n"]
    with open(out / "split.csv") as handle:
        trained = [row["path"] for row in csv.DictReader(handle)]
    assert trained and all(_origin(f"Training/{p}") != "sartaj" for p in trained)
    assert (out / "heldout" / "misclassified.csv").is_file() and (out / "heldout" / "confusion_heldout.png").is_file()
    report = json.loads((out / "heldout" / "localisation.json").read_text())
    assert report["validation"]["images"] > 0 and "gradcam" in report["validation"]["methods"]
    config = json.loads((out / "release" / "config.json").read_text())
    assert config["model_args"]["output_stride"] == 16  # the release rebuilds the finer last stage
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["tumour_map"]  # the auxiliary head is resumable, and not in the release
    assert (
        cli.main(
            [
                "robustness",
                "--checkpoint",
                str(out / "release"),
                "--data",
                str(dataset),
                "--origins",
                str(origins),
                "--collection",
                "sartaj",
                "--out",
                str(out / "heldout-robustness"),
            ]
        )
        == 0
    )
    robustness = json.loads((out / "heldout-robustness" / "robustness.json").read_text())
    summary_path = tmp_path / "crossval.json"
    assert cli.main(["heldout-summary", "--run", f"sartaj={out}", "--out", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["heldout"]["sartaj"]["metrics"] == held and summary["heldout"]["sartaj"]["localisation"]
    assert summary["heldout"]["sartaj"]["robustness"] == robustness
    assert summary["heldout"]["sartaj"]["model_args"]["output_stride"] == 16
    assert summary["heldout"]["sartaj"]["stages"] == [{"run": "cv", "epochs": 2, "init": None}]
    assert summary["heldout"]["sartaj"]["recipe"]["cam_target"] == "centres"
    from brainmri.evaluation import report as page

    table = page.trust_markdown({"full": held, "dedup": None}, summary)
    assert "held-out SARTAJ" in table and f"| images | {held['n']:,} | {held['n']:,} |" in table
    inverted = robustness[page.INVERSION]["accuracy"]
    assert f"| accuracy, contrast inverted (T2-like stand-in) | — | {100 * inverted:.2f} % |" in table
    table = page.trust_markdown(
        {"full": held, "dedup": None}, summary, lang="fr", testing_robustness={page.INVERSION: {"accuracy": 0.5}}
    )
    assert "| exactitude, contraste inversé (imitation du T2) | 50.00 % |" in table
    del summary["heldout"]["sartaj"]["robustness"]  # no robustness table saved: no row
    assert "inverted" not in page.trust_markdown({"full": held, "dedup": None}, summary)
    assert not any(
        "tumour_map" in k
        for k in __import__("safetensors.torch").torch.load_file(out / "release" / "model.safetensors")
    )


def test_heldout_summary_follows_a_fine_tune_back_to_its_first_stage(tmp_path):
    from brainmri.evaluation.modelcard import _stages_text

    first, second = tmp_path / "base", tmp_path / "ft"
    (first / "release").mkdir(parents=True)
    second.mkdir()
    (first / "args.json").write_text(json.dumps({"epochs": 100, "init": None}))
    (second / "args.json").write_text(json.dumps({"epochs": 30, "init": str(first / "release")}))
    stages = _training_stages(second)
    assert [(s["run"], s["epochs"]) for s in stages] == [("base", 100), ("ft", 30)]
    assert _stages_text({"run": "ft", "stages": stages}) == "run `base`, 100 epochs, then `ft`, 30 epochs (fine-tune)"
    (first / "args.json").write_text(json.dumps({"epochs": 100, "init": str(first / "release")}))  # a loop ends
    assert len(_training_stages(second)) == 2


def test_crossval_needs_origins_and_masks_where_asked(dataset, tmp_path, capsys):
    base = ["crossval", "--data", str(dataset), "--out", str(tmp_path / "x"), "--arch", TINY_ARCH, "--no-pretrained"]
    assert cli.main(base) == 2
    assert "--origins" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "y"),
                "--arch",
                TINY_ARCH,
                "--no-pretrained",
                "--seg-weight",
                "1",
            ]
        )
        == 2
    )
    assert "--masks" in capsys.readouterr().err


@pytest.mark.slow  # trains, exports or serves
def test_localisation_command(run, dataset, collections, cache_dir, tmp_path, capsys):
    _, masks = collections
    assert (
        cli.main(
            [
                "localisation",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--masks",
                str(masks),
                "--out",
                str(tmp_path),
                "--cache-dir",
                str(cache_dir),
                "--method",
                "gradcam",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "localisation.json").read_text())
    figshare_testing = [
        p
        for p in dataset.joinpath("Testing").rglob("*")
        if p.is_file() and _origin(p.relative_to(dataset).as_posix()) == "figshare" and "/notumor/" not in p.as_posix()
    ]
    assert report["images"] == len(figshare_testing) and list(report["methods"]) == ["gradcam"]
    assert 0 <= report["methods"]["gradcam"]["all"]["pointing_game"] <= 1
    assert "| gradcam | all |" in capsys.readouterr().out
    # on the run's own validation split: only the Training images split.csv marks "val" that have a mask
    assert (
        cli.main(
            [
                "localisation",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--masks",
                str(masks),
                "--out",
                str(tmp_path),
                "--cache-dir",
                str(cache_dir),
                "--method",
                "gradcam",
                "--validation-of",
                str(run),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "localisation.json").read_text())
    val = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:] if line.endswith(",val")]
    with_mask = [p for p in val if _origin(f"Training/{p}") == "figshare" and not p.startswith("notumor/")]
    assert report["split"] == "validation" and report["images"] == len(with_mask)


@pytest.mark.slow  # trains, exports or serves
def test_robustness_on_a_validation_split_or_a_collection(run, dataset, collections, tmp_path, capsys):
    origins, _ = collections
    val = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:] if line.endswith(",val")]
    assert (
        cli.main(
            [
                "robustness",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "val"),
                "--validation-of",
                str(run),
            ]
        )
        == 0
    )
    table = json.loads((tmp_path / "val" / "robustness.json").read_text())
    assert table["none"]["n"] == len(val) and table["none"]["set"] == f"validation of {run.name}"
    assert f"| shift (validation of {run.name}) |" in (tmp_path / "val" / "robustness.md").read_text()
    # every sartaj image of both folders, the corrupt file skipped
    assert (
        cli.main(
            [
                "robustness",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "sartaj"),
                "--origins",
                str(origins),
                "--collection",
                "sartaj",
            ]
        )
        == 0
    )
    table = json.loads((tmp_path / "sartaj" / "robustness.json").read_text())
    sartaj = [
        p
        for p in dataset.rglob("*")
        if p.is_file() and p.name != "corrupt.jpg" and _origin(p.relative_to(dataset).as_posix()) == "sartaj"
    ]
    assert table["none"]["n"] == len(sartaj) and table["none"]["set"] == "all sartaj images"
    assert table["contrast inversion (T2-like)"]["n"] == len(sartaj)
    capsys.readouterr()
    assert (
        cli.main(
            [
                "robustness",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "x"),
                "--collection",
                "sartaj",
            ]
        )
        != 0
    )
    assert "--collection needs --origins" in capsys.readouterr().err


@pytest.fixture(scope="module")
def run(trained_run):
    return trained_run


def test_outline_draws_the_mask_border_only():
    from brainmri.evaluation.metrics import outline

    mask = np.zeros((9, 9), np.uint8)
    mask[2:7, 2:7] = 255
    drawn = outline(np.full((9, 9), 50, np.uint8), mask)
    border = (drawn == (0, 255, 255)).all(axis=2)
    assert border.sum() == 16 and not border[3:6, 3:6].any() and not border[0].any()


@pytest.mark.slow  # trains, exports or serves
def test_evaluate_outlines_tumours_in_the_gallery(run, dataset, collections, cache_dir, tmp_path):
    _, masks = collections
    assert (
        cli.main(
            [
                "evaluate",
                "--checkpoint",
                str(run / "release"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path),
                "--cache-dir",
                str(cache_dir),
                "--masks",
                str(masks),
            ]
        )
        == 0
    )
    assert (tmp_path / "gradcam_gallery.png").stat().st_size > 0


def test_unfit_maps_a_model_input_map_back_onto_the_original():
    gray = np.zeros((150, 260), np.uint8)
    gray[20:130, 50:230] = 70
    gray[40:70, 80:120] = 240
    mask = (gray == 240).astype(np.uint8) * 255
    for crop, crop_pct in ((True, 1.0), (False, 1.0), (True, 0.9)):
        preprocess = Preprocess.from_config(
            {
                "input_size": (3, 64, 64),
                "interpolation": "bilinear",
                "crop_pct": crop_pct,
                "mean": (0.5,) * 3,
                "std": (0.5,) * 3,
            },
            content_crop=crop,
        )
        heat = preprocess.fit_mask(gray, mask).astype(np.float32) / 255  # a heatmap exactly on the tumour
        back = preprocess.unfit(heat, gray.shape, preprocess.box(gray)) > 0.5
        inside = mask > 0
        assert back.shape == gray.shape and (back & inside).sum() / (back | inside).sum() >= 0.8, (crop, crop_pct)


def test_differentiable_cam_is_grad_cam_and_its_loss_counts_heat_outside():
    from pytorch_grad_cam.utils.image import scale_cam_image

    from brainmri.inference.explain import feature_maps_cams
    from brainmri.training.losses import WithTumourMap, cam_outside_loss
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=64).eval()
    net = WithTumourMap(model, seg=False, cam=True).eval()
    x = torch.randn(3, 3, 64, 64)
    targets = torch.tensor([0, 2, 3])
    logits, tumour_map, cam = net(x, targets)
    assert tumour_map is None and cam.shape[0] == 3 and cam.requires_grad
    library = feature_maps_cams(model, model.forward_features(x).detach(), targets.tolist(), (64, 64)).heatmaps
    ours = scale_cam_image(cam.detach().numpy(), (64, 64))
    for a, b in zip(ours, library):
        if a.max() > 0:
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    heat = torch.zeros(2, 4, 4)
    heat[0, 1, 1] = 1.0  # all on the tumour
    heat[1, 3, 3] = 1.0  # all far from it
    masks = torch.zeros(2, 1, 32, 32)
    masks[:, :, 8:16, 8:16] = 1
    assert cam_outside_loss(heat, masks).item() == pytest.approx(0.5)  # mean of 0 and 1
    assert cam_outside_loss(heat, masks, "centres").item() == pytest.approx(0.5)
    assert cam_outside_loss(heat, torch.zeros(2, 1, 32, 32)).item() == 0.0  # no tumour: nothing asked
    heat[1] = 0
    heat[1, 2, 2] = 1.0  # beside the tumour: inside the one-cell widening, not on a centre in the mask
    assert cam_outside_loss(heat, masks).item() == pytest.approx(0.0)
    assert cam_outside_loss(heat, masks, "centres").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="centres"):
        cam_outside_loss(heat, masks, "nearby")


def test_centres_target_is_the_pointing_games_rule():
    """A one-hot heatmap on a "centres" cell, scaled to the input as the app does, hits the mask in the
    localisation yardstick; on any other cell it misses (where some centre can hit at all)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    from brainmri.evaluation.localisation import localisation_scores
    from brainmri.training.losses import cam_target_cells

    rng = np.random.default_rng(0)
    masks = np.zeros((40, 112, 112), np.uint8)
    for m in masks:  # ellipses of 3 to 30 px, anywhere
        cy, cx = rng.integers(10, 102, 2)
        ry, rx = rng.integers(2, 16, 2)
        yy, xx = np.mgrid[:112, :112]
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
    cells = cam_target_cells(torch.from_numpy(masks / 255.0).float()[:, None], (7, 7), "centres").numpy()
    touching = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(masks > 0).float()[:, None], 7)[:, 0].numpy()
    checked = 0
    for index in range(len(masks)):
        hits = []
        for cell in range(49):
            one_hot = np.zeros((1, 7, 7), np.float32)
            one_hot.flat[cell] = 1.0
            heat = scale_cam_image(one_hot, (112, 112))
            hits.append(bool(localisation_scores(heat, masks[index : index + 1])["pointing"][0]))
        if any(hits):
            assert np.array_equal(np.array(hits).reshape(7, 7), cells[index] > 0)
            checked += 1
        else:  # no centre can hit: the cells touching the mask
            assert np.array_equal(cells[index], touching[index])
    assert 10 < checked < 40  # both kinds of tumour were drawn
