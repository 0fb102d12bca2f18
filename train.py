#!/usr/bin/env python
"""Train, evaluate, audit and publish brain-tumour MRI classifiers.

    python train.py train    --data DATA --out runs/NAME [--no-pretrained --recipe scratch]
    python train.py crossval --data DATA --origins CSV --holdout sartaj --out runs/NAME [recipe options]
    python train.py localisation --checkpoint DIR --data DATA --masks MASKS --out DIR
    python train.py selective --checkpoint DIR --data DATA --out DIR [--origins CSV --collection NAME] [--member DIR]
    python train.py heldout-summary --run sartaj=RUN [--run figshare=RUN] --out assets/metrics/crossval.json
    python train.py evaluate --checkpoint DIR --data DATA --out DIR
    python train.py audit    --data DATA [--out DIR]
    python train.py screening --checkpoint DIR --data DATA --out DIR
    python train.py robustness --checkpoint DIR --data DATA --out DIR [--validation-of RUN | --origins CSV
    --collection NAME]
    python train.py sequence-check --checkpoint DIR --data DATA [--labels assets/sequence-labels.csv]
    python train.py calibrate --run runs/NAME
    python train.py export   --checkpoint DIR --format onnx [--data DATA]
    python train.py push     --checkpoint DIR --repo-id USER/NAME
    python train.py lgg-eval --checkpoint DIR --lgg LGG --out DIR [--sites DU]
    python train.py release  --recipe recipes/NAME.yaml --data DATA [--masks M --lgg L] --out runs/NAME [--install]
    python train.py check-rules RUN --recipe recipes/NAME.yaml

DATA is a Kaggle-layout folder (DATA/Training/<class>/..., DATA/Testing/<class>/...)
or a single folder of class sub-folders. Training never reads Testing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from brainmri.training.config import BALANCE
from brainmri.training.config import default as D  # every training default lives in TrainConfig


def _train_parser(
    sub, name: str = "train", help: str = "train a model; writes a run folder with a release/ folder"
) -> None:
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
    g.add_argument(
        "--pretrained",
        dest="pretrained",
        action="store_true",
        default=D("pretrained"),
        help="start from ImageNet weights via the Hugging Face Hub (default)",
    )
    g.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="random initialisation")
    g.add_argument("--init", default=None, help="start from a local release folder (or Hub id)")
    g.add_argument("--image-size", type=int, default=D("image_size"))
    g.add_argument("--drop-rate", type=float, default=D("drop_rate"))
    g.add_argument("--drop-path-rate", type=float, default=D("drop_path_rate"))
    g.add_argument(
        "--no-content-crop",
        dest="content_crop",
        action="store_false",
        default=D("content_crop"),
        help="do not crop to the head before padding (keeps the file's framing)",
    )
    g.add_argument(
        "--crop",
        default=None,
        choices=["threshold", "head"],
        help="how the head is found before cropping: threshold (rows and columns with bright pixels; the "
        "earlier releases') or head (the largest bright region: letters and markers at the edges "
        "ignored); default: the --init release's, else threshold",
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
    g.add_argument(
        "--holdout",
        default=None,
        choices=["figshare", "sartaj", "br35h"],
        help="train without this collection (and without duplicates of its images)",
    )
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
    g.add_argument(
        "--seg-weight",
        type=float,
        default=D("seg_weight"),
        help="weight of an auxiliary tumour-map loss on the last feature map (needs --masks)",
    )
    g.add_argument(
        "--cam-weight",
        type=float,
        default=D("cam_weight"),
        help="weight of a loss on the share of the true class's Grad-CAM outside the tumour mask (needs --masks)",
    )
    g.add_argument(
        "--cam-target",
        default=D("cam_target"),
        choices=["widened", "centres"],
        help="the Grad-CAM loss's 'inside': widened: cells touching the mask widened by one cell; centres: "
        "cells whose centre is in the mask widened by 2 px (the pointing game's rule)",
    )
    g.add_argument(
        "--paste-prob",
        type=float,
        default=D("paste_prob"),
        help="share of tumour-free training slices given a masked tumour from another slice (needs --masks)",
    )
    g.add_argument(
        "--invert-prob", type=float, default=D("invert_prob"), help="share of slices with the tissue inverted (T2-like)"
    )
    g.add_argument(
        "--curve-prob",
        type=float,
        default=D("curve_prob"),
        help="share of slices given a random monotone intensity curve",
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
        "--framing-prob",
        type=float,
        default=D("framing_prob"),
        help="share of slices framed as the head crop frames them after a gamma change at either end of "
        "the gamma range (a brighter or darker export is cropped differently)",
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


def _print_heldout(collection: str, m: dict) -> None:
    recalls = " / ".join(f"{name} {100 * v['recall']:.1f}" for name, v in m["per_class"].items() if v["support"])
    print(
        f"held-out {collection}: n={m['n']} accuracy {100 * m['accuracy']:.2f} % "
        f"[{100 * m['accuracy_ci95'][0]:.2f}, {100 * m['accuracy_ci95'][1]:.2f}]  recall {recalls}"
    )


def cmd_heldout_eval(args) -> int:
    """A release trained without a collection (``train --origins --holdout``, a recipe stage) judged on every image
    of it, as ``crossval`` judges its own run: the release step of a held-out-collection yardstick chain."""
    from brainmri import Predictor
    from brainmri.data.collections import plan_holdout, read_origins
    from brainmri.data.folders import load_folder, split_roots
    from brainmri.evaluation.metrics import evaluate_set

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    train_root, test_root = split_roots(args.data)
    if train_root is None:
        raise ValueError(f"{args.data} has no Training folder")

    def load(root):
        return load_folder(
            root,
            predictor.preprocess,
            cache_dir=args.cache_dir,
            classes=predictor.labels,
        )

    holdout = plan_holdout(load(train_root), load(test_root), read_origins(args.origins), args.collection)
    results = evaluate_set(
        predictor,
        holdout.heldout,
        Path(args.out),
        "heldout",
        meta={"holdout": holdout.summary(), "checkpoint": str(args.checkpoint)},
    )
    _print_heldout(args.collection, results["heldout"])
    return 0


def _training_stages(run: Path) -> list[dict]:
    """A run and the runs it was fine-tuned from (``--init RUN/release``), first stage first: name and epochs."""
    stages = []
    while run is not None and (run / "args.json").is_file():
        recipe = json.loads((run / "args.json").read_text())
        stages.insert(0, {"run": run.name, "epochs": recipe.get("epochs"), "init": recipe.get("init")})
        init = Path(recipe["init"]) if recipe.get("init") else None
        run = init.parent if init is not None and init.name == "release" and init.parent != run else None
    return stages


def cmd_heldout_summary(args) -> int:
    """Gather leave-one-collection-out results (and their verdict figures) into one file for the README,
    the model card and the Model tab."""
    summary = {"heldout": {}}
    for item in args.run:
        collection, _, run = item.partition("=")
        run = Path(run)
        metrics = json.loads((run / "heldout" / "metrics.json").read_text())
        recipe = json.loads((run / "args.json").read_text())
        entry = {
            "run": run.name,
            "recipe": recipe,
            "stages": _training_stages(run),
            "metrics": metrics["heldout"],
            "holdout": metrics["meta"].get("holdout"),
            "model_args": json.loads((run / "release" / "config.json").read_text()).get("model_args", {}),
        }
        robustness = run / "heldout-robustness" / "robustness.json"  # train.py robustness --collection
        if robustness.is_file():
            entry["robustness"] = json.loads(robustness.read_text())
        for name in ("localisation.json", "selective.json"):
            path = run / "heldout" / name
            if path.is_file():
                data = json.loads(path.read_text())
                if name == "selective.json":
                    entry["verdict"] = data.get("verdict")
                    entry["aurc"] = {k: v["aurc"] for k, v in data["signals"].items()}
                else:
                    entry["localisation"] = data
        summary["heldout"][collection] = entry
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    for collection, entry in summary["heldout"].items():
        m = entry["metrics"]
        print(f"{collection}: accuracy {100 * m['accuracy']:.2f} % on {m['n']} images (run {entry['run']})")
    return 0


def cmd_lgg_eval(args) -> int:
    """The new-source yardstick: a release on TCGA-LGG's labelled slices, per sequence, with the verdict."""
    from brainmri import Predictor
    from brainmri.data.lgg import LabelRule, load_lgg, load_lgg_masks
    from brainmri.evaluation.lgg import lgg_markdown, lgg_report, write_rows

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    rule = LabelRule()
    lgg = load_lgg(
        args.lgg, predictor.preprocess, predictor.labels, sites=args.sites, rule=rule, cache_dir=args.cache_dir
    )
    masks = load_lgg_masks(lgg, predictor.preprocess, cache_dir=args.cache_dir) if args.pointing else None
    report, rows = lgg_report(predictor, lgg, masks=masks)
    report.update(
        checkpoint=str(args.checkpoint),
        label_rule=rule.describe(),
        weights_sha256=predictor.release.weights_sha256,
        model=args.name or f"{predictor.config.get('architecture')}, weights {predictor.release.weights_sha256[:12]}",
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lgg.json").write_text(json.dumps(report, indent=2))
    (out / "lgg.md").write_text(lgg_markdown(report) + "\n")
    write_rows(rows, out / "lgg-slices.csv")
    print(lgg_markdown(report))
    return 0


def cmd_localisation(args) -> int:
    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.data.masks import load_masks
    from brainmri.evaluation.localisation import localisation, localisation_markdown

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    train_root, test_root = split_roots(args.data)
    if args.validation_of:  # a run's own validation split (Training images it never trained on)
        args.split = "validation"
    root = test_root if args.split == "Testing" else train_root
    image_set = load_folder(root, predictor.preprocess, cache_dir=args.cache_dir, classes=list_classes(root)).relabel(
        predictor.labels
    )
    if args.validation_of:
        from brainmri.data.folders import read_split

        val = {path for path, (_, split) in read_split(args.validation_of).items() if split == "val"}
        image_set = image_set.subset(np.array([i for i, p in enumerate(image_set.paths) if p in val], dtype=np.int64))
    masks = load_masks(image_set, args.masks, predictor.preprocess, cache_dir=args.cache_dir)
    report = localisation(
        predictor, image_set.images, masks.masks, image_set.labels, tuple(args.method), widen_px=args.widen
    )
    report["split"] = args.split
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "localisation.json").write_text(json.dumps(report, indent=2))
    print(
        f"{report['images']} {args.split} images with a mask; CAM grid {report['cam_grid']}; "
        f"accuracy on them {100 * report['accuracy']:.1f} %"
    )
    print(localisation_markdown(report))
    return 0


def cmd_selective(args) -> int:
    """Risk-coverage of every abstention signal on Testing or on all images of one collection."""
    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.evaluation import plots
    from brainmri.evaluation.selective import selective_markdown, selective_report, verdict_report

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    members = [Predictor.from_pretrained(m, backend="torch", expected_labels=predictor.labels) for m in args.member]
    if any(m.preprocess != predictor.preprocess for m in members):
        raise ValueError("ensemble members must share the main model's preprocessing")
    train_root, test_root = split_roots(args.data)

    def load(root):
        return load_folder(
            root,
            predictor.preprocess,
            cache_dir=args.cache_dir,
            classes=list_classes(root),
        ).relabel(predictor.labels)

    if args.collection:
        from brainmri.data.collections import concat, origin_of, read_origins

        if not args.origins:
            raise ValueError("--collection needs --origins CSV")
        origins = read_origins(args.origins)
        sets = [load(train_root), load(test_root)]
        image_set = concat([s.subset(np.flatnonzero(origin_of(s, origins) == args.collection)) for s in sets])
        name = f"all {args.collection} images"
    else:
        image_set, name = load(test_root), "Testing"
    depths = None
    if args.fit_split:  # the earlier-depth Mahalanobis: fitted on that run's own training split, never on this set
        from brainmri.data.folders import read_split
        from brainmri.evaluation.selective import depth_models

        split = {path: side for path, (_, side) in read_split(args.fit_split).items()}
        training = load(train_root)
        chosen = np.array([split.get(p) for p in training.paths])
        rng = np.random.default_rng(0)
        train_index = np.sort(rng.permutation(np.flatnonzero(chosen == "train"))[:2000])
        val_index = np.flatnonzero(chosen == "val")
        depths = depth_models(
            predictor,
            training.images[train_index],
            training.labels[train_index],
            training.images[val_index],
            args.stage,
        )
    if args.verdict_only:
        report = {"n": len(image_set), "signals": {}}
    else:
        report = selective_report(
            predictor,
            image_set.images,
            image_set.labels,
            members,
            tta=not args.no_tta,
            mc_passes=args.mc_passes,
            mc_rate=args.mc_rate,
            depths=depths,
        )
    report.update(set=name, checkpoint=str(args.checkpoint), members=list(args.member))
    files = [image_set.root / p for p in image_set.paths]
    report["verdict"] = verdict_report(predictor, files, image_set.labels)
    if args.t2_stand_in:  # tumours in T2-like contrast: the set's tumour slices with their contrast inverted
        from brainmri.inference.sequence_check import invert_inside_head

        tumours = np.flatnonzero(np.array([predictor.labels[k] != "notumor" for k in image_set.labels]))
        report["verdict_inverted_tumours"] = verdict_report(
            predictor, [files[i] for i in tumours], image_set.labels[tumours], transform=invert_inside_head
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if report["signals"]:
        plots.risk_coverage_curves(report["signals"], out / "risk_coverage.png", title=f"Risk against coverage: {name}")
    (out / ("verdict.json" if args.verdict_only else "selective.json")).write_text(json.dumps(report, indent=2))
    if report["signals"]:
        print(f"{name}: n={report['n']}, accuracy {100 * report['accuracy']:.2f} %")
        print(selective_markdown(report))
    v = report["verdict"]
    print(
        f'the release\'s verdict: {100 * v["ok_share"]:.1f} % answered "ok", {100 * v["ok_accuracy"]:.1f} % '
        f"right among "
        f"them; {v['counts']}; decided by {v['codes']}"
    )
    if "verdict_inverted_tumours" in report:
        v = report["verdict_inverted_tumours"]
        print(
            f"its tumour slices with the contrast inverted (T2-like stand-in, n={v['n']}): {100 * v['ok_share']:.1f} % "
            f'"ok", {100 * v["ok_accuracy"]:.1f} % right among them, {100 * v["tumours_ok_as_notumor"]:.1f} % of the '
            f'tumours answered "no tumour" with "ok"; decided by {v["codes"]}'
        )
    return 0


def cmd_sequence_check(args) -> int:
    """Fit the T2-look check on hand-labelled Training slices and store it in the release's config.json."""
    import csv

    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.inference.release import add_files
    from brainmri.inference.sequence_check import CONFIG_KEY, fit_sequence_check, interior_features

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    train_root, _ = split_roots(args.data)
    if train_root is None:
        raise ValueError(f"{args.data} has no Training folder (the labels name Training images)")
    with open(args.labels, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "sequence"} <= set(rows[0]):
        raise ValueError(f"{args.labels} must have the columns file,sequence (and rows)")
    if args.exclude_collection:  # a leave-one-collection-out run's check must not see its held-out collection
        from brainmri.data.collections import read_origins

        if not args.origins:
            raise ValueError("--exclude-collection needs --origins CSV")
        origins = read_origins(args.origins)
        rows = [r for r in rows if origins.get(r["file"]) != args.exclude_collection]
    training = load_folder(train_root, predictor.preprocess, cache_dir=args.cache_dir, classes=list_classes(train_root))
    index = {f"{train_root.name}/{p}": i for i, p in enumerate(training.paths)}
    missing = [r["file"] for r in rows if r["file"] not in index]
    if missing:
        raise ValueError(f"{len(missing)} labelled files are not Training images of {args.data} (first: {missing[0]})")
    chosen = np.array([index[r["file"]] for r in rows])
    features = np.stack([interior_features(training.images[i]) for i in chosen])
    is_t2 = np.array([r["sequence"].strip().upper() == "T2" for r in rows])
    groups = np.array([training.classes[training.labels[i]] for i in chosen])
    random_rows = np.array([r.get("sample", "random") in ("", "random") for r in rows])
    check = fit_sequence_check(
        features,
        is_t2,
        groups=groups,
        C=args.C,
        threshold=args.threshold,
        notumor_uncertain=not args.flip_only,
        random_rows=random_rows,
        fitted_on=f"{len(rows)} hand-labelled Training slices ({int(is_t2.sum())} T2), {Path(args.labels).name}"
        + (f", none from {args.exclude_collection}" if args.exclude_collection else ""),
    )
    everything = check.scores(np.stack([interior_features(image) for image in training.images]))
    flagged = {
        name: float((everything[training.labels == k] >= check.threshold).mean())
        for k, name in enumerate(training.classes)
    }
    report = {**check.cross_validation, "training_flagged_by_class": flagged}
    block = {**check.to_config(), "cross_validation": report}
    add_files(args.checkpoint, {}, config_updates={CONFIG_KEY: block})
    print(
        f"{report['n']} labelled slices, {report['t2']} T2; cross-validated ({report['repeats']} x {report['folds']} "
        f"folds): AUC {report['auc']:.3f}, T2 caught {100 * report['t2_caught']:.1f} %, others flagged "
        f"{100 * report['others_flagged']:.1f} % (threshold {check.threshold})"
    )
    if "random_sample" in report:
        r = report["random_sample"]
        print(
            f"on the {r['n']} randomly drawn of them ({r['t2']} T2): AUC {r['auc']:.3f}, T2 caught "
            f"{100 * r['t2_caught']:.1f} %, others flagged {100 * r['others_flagged']:.1f} %"
        )
    print(
        "flagged among the labelled, by class:", {k: round(100 * v, 1) for k, v in report["flagged_by_group"].items()}
    )
    print("flagged among all Training images, by class:", {k: round(100 * v, 1) for k, v in flagged.items()})
    print(f"written to {Path(args.checkpoint) / 'config.json'} ({CONFIG_KEY})")
    return 0


def cmd_flair_check(args) -> int:
    """Fit the FLAIR look on TCGA-LGG's labelled sequences (FLAIR against T1 and T1C) into the release's config.json;
    with --exclude-sites, fitted without them and measured on them."""
    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.data.lgg import load_lgg, training_sites
    from brainmri.inference.release import add_files
    from brainmri.inference.sequence_check import FLAIR_KEY, fit_feature_look

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    sites = training_sites(args.exclude_sites)
    lgg = load_lgg(args.lgg, predictor.preprocess, predictor.labels, cache_dir=args.cache_dir)
    _, features = predictor.logits_and_features(lgg.images.images)
    features = features.double().numpy()
    fit = np.isin(lgg.site, sites)
    rows, positive = features[fit], lgg.sequence[fit] == "flair"
    groups, kinds = lgg.patient[fit], np.array([f"tcga-lgg {q}" for q in lgg.sequence[fit]])
    fitted_on = (
        f"{int(fit.sum())} labelled TCGA-LGG slices of {', '.join(sites)} ({int(positive.sum())} FLAIR, "
        "the others T1 and T1C)"
    )
    if args.data:  # the Kaggle tumour slices are T1 and T1 with contrast (docs/abstention.md): more of the others
        train_root, _ = split_roots(args.data)
        training = load_folder(
            train_root, predictor.preprocess, cache_dir=args.cache_dir, classes=list_classes(train_root)
        )
        tumour = np.flatnonzero(training.labels != training.classes.index("notumor"))
        kaggle = predictor.logits_and_features(training.images[tumour])[1].double().numpy()
        rows, positive = np.concatenate([rows, kaggle]), np.concatenate([positive, np.zeros(len(tumour), bool)])
        groups = np.concatenate([groups, [f"kaggle-{i}" for i in tumour]])
        kinds = np.concatenate([kinds, [f"kaggle {training.classes[training.labels[i]]}" for i in tumour]])
        fitted_on += f", and {len(tumour)} Kaggle Training tumour slices (T1 and T1 with contrast)"
    check = fit_feature_look(
        rows, positive, groups, C=args.C, threshold=args.threshold, fitted_on=fitted_on, kinds=kinds
    )
    report = dict(check.cross_validation)
    if args.exclude_sites:
        held = ~fit
        scores = check.scores(features[held])
        report["held_out"] = {
            "sites": list(args.exclude_sites),
            **{
                f"{sequence}_flagged": float((scores[lgg.sequence[held] == sequence] >= check.threshold).mean())
                for sequence in ("flair", "t1", "t1c")
            },
        }
    if args.data:  # in-sample for the tumour classes (their cross-validated shares are in flagged_by_kind)
        scores = check.scores(predictor.logits_and_features(training.images)[1].double().numpy())
        report["kaggle_training_flagged"] = {
            name: float((scores[training.labels == k] >= check.threshold).mean())
            for k, name in enumerate(training.classes)
        }
    add_files(args.checkpoint, {}, config_updates={FLAIR_KEY: {**check.to_config(), "cross_validation": report}})
    print(json.dumps(report, indent=2))
    print(f"written to {Path(args.checkpoint) / 'config.json'} ({FLAIR_KEY})")
    return 0


def cmd_evaluate(args) -> int:
    from brainmri.evaluation.metrics import evaluate_release

    metrics = evaluate_release(
        args.checkpoint, args.data, args.out, cache_dir=args.cache_dir, gallery=not args.no_gallery, masks=args.masks
    )
    for name, m in metrics.items():
        if isinstance(m, dict) and "accuracy" in m:
            print(
                f"{name:6s} n={m['n']:5d}  accuracy {m['accuracy']:.4f} [{m['accuracy_ci95'][0]:.4f}, "
                f"{m['accuracy_ci95'][1]:.4f}]  macro-F1 {m['macro_f1']:.4f}  macro AUC {m['roc_auc']['macro']:.4f}  "
                f"ECE {m['ece']:.4f}"
            )
    return 0


def cmd_robustness(args) -> int:
    from brainmri.evaluation.robustness import robustness, robustness_markdown

    print(
        robustness_markdown(
            robustness(
                args.checkpoint,
                args.data,
                args.out,
                limit=args.limit,
                validation_of=args.validation_of,
                origins=args.origins,
                collection=args.collection,
            )
        )
    )
    return 0


def cmd_screening(args) -> int:
    from brainmri import Predictor
    from brainmri.data.folders import list_classes, list_files, split_roots
    from brainmri.evaluation.screening_report import screening_report, synthetic_outliers

    predictor = Predictor.from_pretrained(args.checkpoint, backend="torch")
    _, test_root = split_roots(args.data)
    files = [test_root / rel for rel, _ in list_files(test_root, list_classes(test_root))]
    report = screening_report(predictor, files, synthetic_outliers())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "screening.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def cmd_audit(args) -> int:
    from brainmri.evaluation.audit import run_audit

    report = run_audit(args.data, args.out, cache_dir=args.cache_dir)
    print(json.dumps(report["summary"], indent=2))
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


def cmd_release(args) -> int:
    """Every stage of a recipe's chain, then its release steps; resumable; --install copies it into assets/."""
    from brainmri.training.recipes import Release

    start = dict(item.split("=", 1) for item in args.start_release)
    places = {
        k: v for k, v in (("data", args.data), ("masks", args.masks), ("lgg", args.lgg), ("origins", args.origins)) if v
    }
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


def _print_rules(run, recipe) -> list[dict]:
    from brainmri.training.recipes import check_rules

    results = check_rules(run, recipe)
    for r in results:
        bounds = " and ".join(f"{op} {r[key]:g}" for key, op in (("min", ">="), ("max", "<=")) if key in r)
        figure = "missing" if r["figure"] is None else f"{r['figure']:.4g}"
        print(f"{'met    ' if r['met'] else 'NOT MET'}  {r['name']}: {figure} (rule {bounds}; {r['file']} {r['key']})")
    return results


def cmd_check_rules(args) -> int:
    results = _print_rules(args.run, args.recipe)
    print(f"{sum(r['met'] for r in results)} of {len(results)} rules met")
    return 0 if all(r["met"] for r in results) else 1


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


def cmd_push(args) -> int:
    from brainmri.inference.hub import push_release

    url = push_release(args.checkpoint, args.repo_id, private=args.private, token=args.token)
    print(url)
    return 0


def add_collection_args(p) -> None:
    """--origins/--collection: measure on every image of one collection instead of Testing."""
    p.add_argument("--origins", default=None, help="CSV of each image's collection (with --collection)")
    p.add_argument(
        "--collection",
        default=None,
        choices=["figshare", "sartaj", "br35h"],
        help="measure on every image of this collection (Training and Testing) instead of Testing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _train_parser(
        sub,
        "crossval",
        "leave one collection out: train without it (--origins, --holdout), "
        "then evaluate on all its images (OUT/heldout/)",
    )

    p = sub.add_parser(
        "heldout-summary", help="gather crossval runs (heldout/metrics.json, selective.json) into one JSON"
    )
    p.add_argument("--run", action="append", required=True, help="COLLECTION=RUN_FOLDER (repeat)")
    p.add_argument("--out", required=True, help="e.g. assets/metrics/crossval.json")

    p = sub.add_parser("localisation", help="do heatmaps of the true class land on the tumour masks?")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--masks", required=True, help="tumour masks folder (MASKS/<Training|Testing>/<class>/<name>.png)")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=["Testing", "Training"], default="Testing")
    p.add_argument(
        "--validation-of",
        default=None,
        metavar="RUN",
        help="measure on that run's validation split (RUN/split.csv) instead of --split",
    )
    p.add_argument(
        "--method", action="append", default=None, help="CAM method (repeat; default gradcam, gradcam++, eigencam)"
    )
    p.add_argument("--widen", type=int, default=2, help="pointing game: widen the mask by this many input pixels")
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("selective", help="risk-coverage curves and AURC of every abstention signal")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    add_collection_args(p)
    p.add_argument("--member", action="append", default=[], help="another release for the ensemble signal (repeat)")
    p.add_argument("--no-tta", action="store_true", help="skip the test-time-view signal")
    p.add_argument("--mc-passes", type=int, default=16, help="passes with the head's dropout on (0: skip MC dropout)")
    p.add_argument(
        "--mc-rate",
        type=float,
        default=None,
        help="MC dropout rate (default: the release's training drop_rate, recorded since 2026-11-26; "
        "older releases need it given, e.g. 0.3, the recipes' default)",
    )
    p.add_argument(
        "--fit-split",
        default=None,
        help="the run's split.csv: fit a Mahalanobis model on an earlier stage from its training split",
    )
    p.add_argument(
        "--stage", type=int, default=2, help="with --fit-split: which stage (0-based; the last is the release's)"
    )
    p.add_argument(
        "--verdict-only",
        action="store_true",
        help="only the page's verdict (writes verdict.json; no signals, no curves)",
    )
    p.add_argument(
        "--t2-stand-in",
        action="store_true",
        help="also the verdict on the set's tumour slices with their contrast inverted (tumours in T2-like contrast)",
    )
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("sequence-check", help="fit the T2-look check on hand-labelled Training slices into a release")
    p.add_argument("--checkpoint", required=True, help="release folder (its config.json gets the check)")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", default="assets/sequence-labels.csv", help="CSV file,sequence (T2 or other)")
    p.add_argument("--threshold", type=float, default=0.5, help="score at which a slice looks T2-weighted")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularisation of the logistic regression")
    p.add_argument("--origins", default=None, help="CSV of each image's collection (with --exclude-collection)")
    p.add_argument(
        "--exclude-collection",
        default=None,
        choices=["figshare", "sartaj", "br35h"],
        help="leave that collection's labelled slices out (for a run that holds it out)",
    )
    p.add_argument(
        "--flip-only",
        action="store_true",
        help="a T2-looking slice is 'uncertain' only when the contrast-inverted slice changes the answer",
    )
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("evaluate", help="metrics and figures on Testing (full and de-duplicated)")
    p.add_argument("--checkpoint", required=True, help="release folder or Hub id")
    p.add_argument("--data", required=True, help="dataset root (Training/ + Testing/) or one folder of class folders")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-gallery", action="store_true", help="skip the Grad-CAM gallery")
    p.add_argument("--masks", default=None, help="tumour masks folder: outline the tumour in the Grad-CAM gallery")

    p = sub.add_parser(
        "robustness",
        help="accuracy under gamma, blur, downscale, JPEG and contrast shifts "
        "(Testing, a validation split or a collection)",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=None, help="first N files only")
    p.add_argument(
        "--validation-of",
        default=None,
        metavar="RUN",
        help="measure on that run's validation split (RUN/split.csv) instead of Testing",
    )
    add_collection_args(p)

    p = sub.add_parser(
        "screening", help="how the app's not-an-MRI / uncertain checks behave on Testing and on outliers"
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("audit", help="exact and near duplicates within and across Training and Testing")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/audit")
    p.add_argument("--cache-dir", default=None)

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

    p = sub.add_parser("card", help="write the release folder's model card (README.md) from its saved record")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True, help="folder with metrics.json (and robustness.json, audit.json)")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        help="run folder (args.json, summary.json); repeat for a model trained in stages, in order",
    )
    p.add_argument(
        "--command",
        dest="train_command",
        action="append",
        default=[],
        help="the training command, as run; repeat for each stage",
    )

    p = sub.add_parser("export", help="add an ONNX export (checked against torch) to a release folder")
    p.add_argument("--checkpoint", required=True, help="release folder; model.onnx is written into it")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument(
        "--data", default=None, help="check on the first --check-images Testing images of DATA (default: random inputs)"
    )
    p.add_argument("--check-images", type=int, default=64)
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest logit difference accepted")

    p = sub.add_parser("heldout-eval", help="judge a release trained without a collection on every image of it")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--origins", required=True, help="CSV of each image's collection (file,origin)")
    p.add_argument("--collection", required=True, choices=["figshare", "sartaj", "br35h"])
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("lgg-eval", help="judge a release on TCGA-LGG slices (per sequence, with the verdict)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--lgg", required=True, help="the TCGA-LGG folder (slices.csv, <patient>/NNN_<sequence>.jpg)")
    p.add_argument("--sites", nargs="+", default=None, help="institutions to judge on (default: all)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-pointing", dest="pointing", action="store_false", help="skip the Grad-CAM pointing game")
    p.add_argument("--name", default=None, help="how tables name the model judged (default: architecture and weights)")
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("flair-check", help="fit the FLAIR look (the verdict's check) on TCGA-LGG's sequences")
    p.add_argument("--checkpoint", required=True, help="release folder (its config.json gets the check)")
    p.add_argument("--lgg", required=True)
    p.add_argument("--exclude-sites", nargs="+", default=None, help="fit without these institutions, measure on them")
    p.add_argument(
        "--data",
        default=None,
        help="the Kaggle dataset: its Training tumour slices join the fit as "
        "non-FLAIR, and how often it flags each class is reported",
    )
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--C", type=float, default=0.1, help="inverse regularisation of the logistic regression")
    p.add_argument("--cache-dir", default=None)

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
        "--install",
        action="store_true",
        help="copy the release and metrics into --assets when every shipping rule is met",
    )
    p.add_argument("--assets", default="assets")
    p.add_argument("--cache-dir", default=None)

    p = sub.add_parser("check-rules", help="print each shipping rule of a recipe against a run's figures")
    p.add_argument("run")
    p.add_argument("--recipe", required=True)

    p = sub.add_parser("push", help="upload a release folder to the Hugging Face Hub")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", default=None, help="default: the token saved by `hf auth login` or HF_TOKEN")

    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; with ``--config FILE`` (train, crossval) the recipe's args are the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        from brainmri.training.recipes import config_defaults

        places = {k: getattr(args, k) for k in ("data", "masks", "lgg", "origins") if getattr(args, k, None)}
        subparser = parser._subparsers._group_actions[0].choices[args.command]
        subparser.set_defaults(**config_defaults(args.config, places))
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except ValueError as err:  # a recipe file that cannot be read
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    command = args.command
    del args.command, args.verbose
    from brainmri.inference.release import CheckpointError
    from brainmri.training.export import ExportError
    from brainmri.training.model import PretrainedUnavailable

    try:
        if getattr(args, "method", "") is None:
            args.method = ["gradcam", "gradcam++", "eigencam"]
        return {
            "train": cmd_train,
            "crossval": cmd_crossval,
            "heldout-summary": cmd_heldout_summary,
            "selective": cmd_selective,
            "localisation": cmd_localisation,
            "evaluate": cmd_evaluate,
            "sequence-check": cmd_sequence_check,
            "audit": cmd_audit,
            "robustness": cmd_robustness,
            "screening": cmd_screening,
            "calibrate": cmd_calibrate,
            "card": cmd_card,
            "export": cmd_export,
            "push": cmd_push,
            "lgg-eval": cmd_lgg_eval,
            "release": cmd_release,
            "check-rules": cmd_check_rules,
            "flair-check": cmd_flair_check,
            "heldout-eval": cmd_heldout_eval,
        }[command](args)
    except (PretrainedUnavailable, CheckpointError, ExportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
