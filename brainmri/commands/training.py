"""`train.py` commands that train and ship: train, crossval, calibrate, release, check-rules, card, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brainmri.data.collections import COLLECTIONS
from brainmri.training.config import BALANCE
from brainmri.training.config import default as D  # every training default lives in TrainConfig


def _floats(group, *options: tuple[str, str]) -> None:
    """Float options, each (flag, help), whose defaults are TrainConfig's fields of the same name."""
    for flag, text in options:
        group.add_argument(flag, type=float, default=D(flag[2:].replace("-", "_")), help=text)


def add_train_parser(
    sub, name: str = "train", help: str = "train a model; writes a run folder with a release/ folder"
) -> argparse.ArgumentParser:
    """The options of `train` and `crossval` (every training default lives in TrainConfig)."""
    p = sub.add_parser(name, help=help)
    g = p.add_argument_group("data")
    g.add_argument(
        "--config",
        default=None,
        help="a recipe stage (recipes/NAME.yaml): its args become the defaults, flags given here win",
    )
    g.add_argument("--data", required=True, help="dataset root (with Training/) or a folder of class folders")
    g.add_argument("--out", required=True, help="run folder (arguments, epochs.csv, curves, release/, last.pt)")
    g.add_argument("--val-fraction", type=float, default=D("val_fraction"))
    g.add_argument("--cache-dir", default=None, help="decoded-image cache (default .cache/brainmri)")
    g = p.add_argument_group("model")
    g.add_argument("--arch", default=D("arch"), help="any timm architecture name")
    g.add_argument("--pretrained", action="store_true", default=D("pretrained"), help="start from ImageNet (the Hub)")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="random initialisation")
    g.add_argument("--init", default=None, help="start from a local release folder (or Hub id)")
    g.add_argument("--image-size", type=int, default=D("image_size"))
    g.add_argument(
        "--init-image-size",
        type=int,
        default=None,
        help="with --init: train at this input size instead of the release's (a ConvNeXt takes any size)",
    )
    g.add_argument("--drop-rate", type=float, default=D("drop_rate"))
    g.add_argument("--drop-path-rate", type=float, default=D("drop_path_rate"))
    crop = D("content_crop")
    g.add_argument("--no-content-crop", dest="content_crop", action="store_false", default=crop, help="no head crop")
    g.add_argument(
        "--crop",
        default=None,
        choices=["threshold", "head"],
        help="how the head is found before cropping: threshold (rows and columns with bright pixels; the "
        "earlier releases') or head (the largest bright region: letters and markers at the edges "
        "ignored); default: the --init release's, else threshold",
    )
    g.add_argument(
        "--intensity",
        default=None,
        choices=["none", "head"],
        help="after the geometry: none (the pixels as they are) or head (every slice scaled so that the inside "
        "of its head reaches one brightness); default: the --init release's, else none",
    )
    g.add_argument(
        "--ls-init-value", type=float, default=None, help="ConvNeXt layer-scale init (1.0 helps from scratch)"
    )
    g.add_argument(
        "--output-stride",
        type=int,
        default=None,
        choices=[16, 32],
        help="16: dilate the last stage, a last feature map twice as fine (7x7 cells at 112 px)",
    )
    g = p.add_argument_group("collections and masks")
    g.add_argument("--origins", default=None, help="CSV of each image's collection (file,origin)")
    g.add_argument("--holdout", choices=COLLECTIONS, help="train without this collection and duplicates of its images")
    g.add_argument(
        "--lgg",
        default=None,
        help="also train on TCGA-LGG's labelled slices (brainmri.data.lgg's rule; "
        "patients split between training and validation)",
    )
    g.add_argument(
        "--lgg-holdout",
        nargs="+",
        default=None,
        metavar="SITE",
        help="TCGA-LGG institutions left out of training (the leave-one-institution-out yardstick)",
    )
    g.add_argument("--masks", default=None, help="tumour masks folder (MASKS/<Training|Testing>/<class>/<name>.png)")
    _floats(
        g,
        ("--seg-weight", "weight of an auxiliary tumour-map loss on the last feature map (needs --masks)"),
        ("--cam-weight", "weight of a loss on the share of the true class's Grad-CAM outside the tumour mask"),
    )
    inside = "the Grad-CAM loss's inside: widened (cells touching the mask, widened a cell) or centres (pointing game)"
    g.add_argument("--cam-target", default=D("cam_target"), choices=["widened", "centres"], help=inside)
    _floats(  # augmentation: shares of the training slices
        g,
        (
            "--paste-prob",
            "share of tumour-free slices given a masked tumour from another slice of their source and sequence"
            " (needs --masks)",
        ),
        ("--invert-prob", "share of slices with the tissue inverted (T2-like)"),
        ("--curve-prob", "share of slices given a random monotone intensity curve"),
        ("--marker-prob", "share of slices with letters, an arrow or a scale bar burnt in near the edges"),
        ("--framing-prob", "share of slices cropped as a brighter or darker export of them is (gamma at the ends)"),
    )
    g.add_argument(
        "--paste-into",
        default=D("paste_into"),
        choices=["all", "tcga-lgg"],
        help="which tumour-free slices --paste-prob may give a lesion: all, or the TCGA-LGG ones only",
    )
    g.add_argument(
        "--gamma",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=D("gamma"),
        help="range of the random gamma (log-uniform; default: the augmentation's own, strong: 0.6 1.6)",
    )
    g.add_argument(
        "--group-robust",
        type=float,
        default=D("group_robust"),
        metavar="STEP",
        help="Group DRO: weigh the (source, class) cells the model does worst on most, the weights moving by "
        "exp(STEP x a cell's loss) each step (0: a plain mean)",
    )
    g.add_argument(
        "--mixstyle",
        type=float,
        default=D("mixstyle"),
        metavar="P",
        help="MixStyle: with probability P per batch, mix each image's feature statistics after the first two "
        "stages with another image's (a new mixture of the sources' looks; training only; 0: off)",
    )
    g.add_argument(
        "--balance",
        default=D("balance"),
        choices=list(BALANCE),
        help="classes: draw each batch with replacement, every class equally likely (for skewed sets); "
        "sources: every (source, class) pair equally likely (Kaggle glioma as often as TCGA-LGG glioma)",
    )
    g = p.add_argument_group("recipe (unset values come from --recipe)")
    g.add_argument(
        "--recipe",
        default=D("recipe"),
        choices=["report", "scratch"],
        help="report: Adam, head 1e-3 then all 1e-4, early stopping; scratch: AdamW, warm-up+cosine, "
        "label smoothing, strong augmentation, EMA",
    )
    g.add_argument("--epochs", type=int, default=D("epochs"))
    g.add_argument(
        "--batch-size", type=int, default=D("batch_size"), help="global batch (split over torchrun processes)"
    )
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--head-lr", type=float, default=None)
    g.add_argument("--head-epochs", type=int, default=None)
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--warmup-epochs", type=int, default=None)
    g.add_argument("--schedule", choices=["constant", "cosine"], default=None)
    g.add_argument("--label-smoothing", type=float, default=None)
    g.add_argument("--augment", choices=["report", "strong", "none"], default=None)
    g.add_argument("--ema-decay", type=float, default=None, help="0 disables the weight EMA")
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (0: off)")
    g.add_argument("--seed", type=int, default=D("seed"))
    g.add_argument(
        "--split-seed",
        type=int,
        default=D("split_seed"),
        help="seed of the validation split (default: --seed): other seeds, same split (e.g. after --init)",
    )
    g.add_argument(
        "--ok-target",
        type=float,
        default=D("ok_target"),
        help="after training, fit the verdict's confidence threshold so that answers are right this often "
        "on each source of the validation split (default: the fixed 0.90)",
    )
    g.add_argument(
        "--clean-floor",
        type=float,
        default=D("clean_floor"),
        help="with --init: an epoch whose clean validation accuracy is more than this (a fraction, 0.005 = "
        "half a point) below the starting model's is chosen only while no epoch has stayed above it",
    )
    g = p.add_argument_group("machine")
    g.add_argument("--bf16", choices=["auto", "on", "off"], default=D("bf16"))
    g.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=D("channels_last"))
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke tests)")
    g.add_argument("--half-weights", action="store_true", help="store the release weights in fp16")
    g.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    g.add_argument(
        "--no-evaluate",
        dest="evaluate",
        action="store_false",
        help="skip evaluating the release on DATA/Testing at the end",
    )
    return p


def _print_rules(run, recipe) -> list[dict]:
    from brainmri.training.recipes import check_rules

    results = check_rules(run, recipe)
    for r in results:
        bounds = " and ".join(f"{op} {r[key]:g}" for key, op in (("min", ">="), ("max", "<=")) if key in r)
        figure = "missing" if r["figure"] is None else f"{r['figure']:.4g}"
        print(f"{'met    ' if r['met'] else 'NOT MET'}  {r['name']}: {figure} (rule {bounds}; {r['file']} {r['key']})")
    return results


def cmd_train(args) -> int:
    from brainmri.training.config import config_from_dict
    from brainmri.training.trainer import Trainer

    values = vars(args).copy()
    evaluate = values.pop("evaluate")
    trainer = Trainer(config_from_dict(values))
    trainer.run()
    testing = Path(args.data) / "Testing"
    if evaluate and trainer.dist.main and testing.is_dir() and (Path(args.out) / "release").is_dir():
        from brainmri.evaluation.metrics import evaluate_release

        evaluate_release(Path(args.out) / "release", args.data, Path(args.out) / "evaluation", cache_dir=args.cache_dir)
    return 0


def cmd_crossval(args) -> int:
    """Leave one collection out: train on the others, evaluate on every image of the held-out one."""
    from brainmri import Predictor
    from brainmri.evaluation.metrics import evaluate_set
    from brainmri.training.config import config_from_dict
    from brainmri.training.trainer import Trainer

    if not (args.holdout and args.origins):
        raise ValueError("crossval needs --origins CSV and --holdout COLLECTION")
    values = vars(args).copy()
    values.pop("evaluate")
    trainer = Trainer(config_from_dict(values))
    trainer.run()
    if not trainer.dist.main:
        return 0
    out = Path(args.out)
    predictor = Predictor.from_pretrained(out / "release", backend="torch")
    held = trainer.holdout.heldout
    results = evaluate_set(
        predictor, held, out / "heldout", "heldout", meta={"holdout": trainer.holdout.summary(), "recipe": vars(args)}
    )
    from brainmri.commands.heldout import _print_heldout

    _print_heldout(args.holdout, results["heldout"])
    if args.masks:
        from brainmri.data.masks import load_masks
        from brainmri.evaluation.localisation import localisation, localisation_markdown

        report = {}
        if trainer.val_masks.annotated.any():  # none when figshare, the one collection with masks, is held out
            report["validation"] = localisation(
                predictor, trainer.val_set.images, trainer.val_masks.masks, trainer.val_set.labels
            )
        held_masks = load_masks(held, args.masks, predictor.preprocess, cache_dir=args.cache_dir)
        if held_masks.annotated.any():
            report["heldout"] = localisation(
                predictor, held.images, held_masks.masks, held.relabel(predictor.labels).labels
            )
        (out / "heldout" / "localisation.json").write_text(json.dumps(report, indent=2))
        for name, block in report.items():
            print(f"localisation on {name} (true class):\n{localisation_markdown(block)}")
    return 0


def cmd_calibrate(args) -> int:
    from brainmri.data.folders import load_run_split
    from brainmri.training.calibration import calibrate_release

    train_set, val_set = load_run_split(args.run)
    if args.ok_target is None:  # the run's own setting, as training's last step used it
        args.ok_target = json.loads((Path(args.run) / "args.json").read_text()).get("ok_target")
    result = calibrate_release(Path(args.run) / "release", train_set, val_set, ok_target=args.ok_target)
    print(json.dumps(result, indent=2))
    return 0


def cmd_card(args) -> int:
    from brainmri.evaluation.modelcard import write_model_card

    print(write_model_card(args.checkpoint, args.metrics, args.run, command=args.train_command))
    return 0


def cmd_export(args) -> int:
    from brainmri.training.export import export_release, first_testing_inputs

    inputs = first_testing_inputs(args.checkpoint, args.data, args.check_images) if args.data else None
    record = export_release(args.checkpoint, inputs, tolerance=args.tolerance)
    print(json.dumps(record, indent=2))
    return 0


def cmd_release(args) -> int:
    """Every stage of a recipe's chain, then its release steps; resumable; --install copies it into assets/."""
    from brainmri.training.chain import Release

    start = dict(item.split("=", 1) for item in args.start_release)
    places = {
        k: v for k, v in (("data", args.data), ("masks", args.masks), ("lgg", args.lgg), ("origins", args.origins)) if v
    }
    from brainmri.commands import main

    release = Release(
        Path(args.recipe), Path(args.out), places, main, start=start, cache_dir=args.cache_dir, until=args.until
    )
    if not release.run():
        print(f"stopped after {args.until}; run the same command again to continue")
        return 0
    results = _print_rules(args.out, args.recipe)
    if args.install:
        if not all(r["met"] for r in results):
            raise ValueError("not installed: a shipping rule is not met (train.py check-rules)")
        release.install(Path(args.assets))
        print(f"installed {release.release_dir} and {Path(args.out) / 'metrics'} into {args.assets}")
    return 0


def cmd_check_rules(args) -> int:
    results = _print_rules(args.run, args.recipe)
    print(f"{sum(r['met'] for r in results)} of {len(results)} rules met")
    return 0 if all(r["met"] for r in results) else 1


def register(sub) -> None:
    """Add these commands to ``train.py``'s sub-parsers."""
    p = add_train_parser(sub)
    p.set_defaults(func=cmd_train)

    p = add_train_parser(
        sub,
        "crossval",
        "leave one collection out: train without it (--origins, --holdout), "
        "then evaluate on all its images (OUT/heldout/)",
    )
    p.set_defaults(func=cmd_crossval)

    p = sub.add_parser(
        "calibrate", help="refit temperature and out-of-distribution screening on a run's validation split"
    )
    p.add_argument("--run", required=True, help="run folder written by `train` (args.json, split.csv, release/)")
    p.add_argument(
        "--ok-target",
        type=float,
        default=None,
        help="fit the verdict's confidence threshold so that answers are right this often on each source "
        "of the validation split (default: the run's own --ok-target, else the fixed 0.90)",
    )
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("card", help="write the release folder's model card (README.md) from its saved record")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True, help="folder with metrics.json (and robustness.json, audit.json)")
    p.add_argument("--run", action="append", default=[], help="each stage's run folder (args.json, summary.json)")
    p.add_argument("--command", dest="train_command", action="append", default=[], help="each stage's command, as run")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("export", help="add an ONNX export (checked against torch) to a release folder")
    p.add_argument("--checkpoint", required=True, help="release folder; model.onnx is written into it")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument(
        "--data", default=None, help="check on the first --check-images Testing images of DATA (default: random inputs)"
    )
    p.add_argument("--check-images", type=int, default=64)
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest logit difference accepted")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("release", help="train a recipe's chain and run its release steps (resumable)")
    p.add_argument("--recipe", required=True, help="the chain's last stage, recipes/NAME.yaml")
    p.add_argument("--data", required=True)
    p.add_argument("--masks", default=None)
    p.add_argument("--lgg", default=None)
    p.add_argument("--origins", default=None)
    p.add_argument("--out", required=True, help="run folder: one sub-folder per stage, metrics/, .steps/")
    p.add_argument(
        "--start-release",
        action="append",
        default=[],
        metavar="STAGE=DIR",
        help="use an existing release of STAGE (checked against the recipe's recorded sha256) instead of "
        "training it and the stages before it",
    )
    p.add_argument("--until", default=None, help="stop after this step (stage-NAME or a release step)")
    p.add_argument(
        "--install", action="store_true", help="copy the release and metrics into --assets if every rule is met"
    )
    p.add_argument("--assets", default="assets")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("check-rules", help="print each shipping rule of a recipe against a run's figures")
    p.add_argument("run")
    p.add_argument("--recipe", required=True)
    p.set_defaults(func=cmd_check_rules)
