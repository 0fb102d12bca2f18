"""Leave-one-collection-out runs, tumour masks through the preprocessing, lesion-aware augmentation, localisation."""

import csv
import json

import pytest
import torch

import train as cli
from brainmri.data.collections import plan_holdout, read_origins
from brainmri.data.folders import load_folder
from brainmri.inference.preprocess import Preprocess
from helpers import TINY_SIZE, synthetic_origin, tiny_run


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


@pytest.mark.slow  # trains, exports or serves
def test_crossval_trains_without_the_collection_and_reports_it(dataset, cache_dir, collections, tmp_path, capsys):
    origins, masks = collections
    out = tmp_path / "cv"
    options = "--recipe scratch --epochs 2 --holdout sartaj --seg-weight 1.0 --cam-weight 1.0 --cam-target centres"
    options += " --paste-prob 0.5 --invert-prob 0.2 --curve-prob 0.2 --output-stride 16 --framing-prob 0.5"
    paths = ["--origins", str(origins), "--masks", str(masks)]
    args = tiny_run("crossval", str(dataset), str(out), str(cache_dir), *paths, *options.split(), steps=2)
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
    assert "| exactitude, contraste inversé (imitation du T2) | 50,00\u202f% |" in table  # French numbers
    del summary["heldout"]["sartaj"]["robustness"]  # no robustness table saved: no row
    assert "inverted" not in page.trust_markdown({"full": held, "dedup": None}, summary)
    assert not any(
        "tumour_map" in k
        for k in __import__("safetensors.torch").torch.load_file(out / "release" / "model.safetensors")
    )
