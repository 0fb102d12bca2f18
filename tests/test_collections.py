"""Leave-one-collection-out runs, tumour masks through the preprocessing, lesion-aware augmentation, localisation."""

import csv
import json

import numpy as np
import pytest
import torch

import train as cli
from brainmri.commands.heldout import _training_stages
from brainmri.commands.training import add_train_parser
from brainmri.data.augment import AugmentConfig
from brainmri.data.collections import plan_holdout, read_origins
from brainmri.data.folders import load_folder
from brainmri.inference.preprocess import GammaFraming, Preprocess
from helpers import TINY_ARCH, TINY_SIZE, synthetic_origin, tiny_run


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
    assert all(synthetic_origin(f"Training/{p}") != "figshare" for p in trained)
    assert "glioma/Tr-glioma-001.png" in plan.dropped_duplicates and "glioma/Tr-glioma-001.png" not in trained
    assert all(synthetic_origin(p) == "figshare" or p.endswith("planted-exact.png") for p in plan.heldout.paths)
    assert {p.split("/")[0] for p in plan.heldout.paths} == {"Training", "Testing"}
    assert plan.summary()["heldout_images"] == len(plan.heldout)
    with pytest.raises(ValueError, match="unknown collection"):
        plan_holdout(training, testing, origins, "mars")


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


@pytest.mark.slow  # trains, exports or serves
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
    assert trained and all(synthetic_origin(f"Training/{p}") != "sartaj" for p in trained)
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
        if p.is_file() and p.name != "corrupt.jpg" and synthetic_origin(p.relative_to(dataset).as_posix()) == "sartaj"
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
