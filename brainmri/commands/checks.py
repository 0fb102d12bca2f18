"""`train.py` commands that fit a release's appearance checks: the T2 look (sequence-check) and the FLAIR look
(flair-check)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainmri.data.collections import COLLECTIONS


def cmd_sequence_check(args) -> int:
    """Fit the T2-look check on hand-labelled Training slices and store it in the release's config.json."""
    import csv

    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.evaluation.modelcard import fitted_on_text
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
        fitted_on=fitted_on_text(len(rows), int(is_t2.sum()), Path(args.labels).name, args.exclude_collection),
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
    # the Kaggle tumour slices are T1 and T1 with contrast (docs/record/abstention.md): more of the others
    if args.data:
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


def register(sub) -> None:
    """Add these commands to ``train.py``'s sub-parsers."""
    p = sub.add_parser("sequence-check", help="fit the T2-look check on hand-labelled Training slices into a release")
    p.add_argument("--checkpoint", required=True, help="release folder (its config.json gets the check)")
    p.add_argument("--data", required=True)
    p.add_argument("--labels", default="assets/sequence-labels.csv", help="CSV file,sequence (T2 or other)")
    p.add_argument("--threshold", type=float, default=0.5, help="score at which a slice looks T2-weighted")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularisation of the logistic regression")
    p.add_argument("--origins", default=None, help="CSV of each image's collection (with --exclude-collection)")
    p.add_argument("--exclude-collection", choices=COLLECTIONS, help="leave its slices out (a run that holds it out)")
    p.add_argument("--flip-only", action="store_true", help="'uncertain' only if the inverted slice changes the answer")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_sequence_check)

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
    p.set_defaults(func=cmd_flair_check)
