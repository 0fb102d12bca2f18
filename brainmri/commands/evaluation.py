"""`train.py` commands that measure a release: evaluate, robustness, screening, localisation, selective, audit,
held-out collections (heldout-eval, heldout-summary) and TCGA-LGG (lgg-eval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainmri.data.collections import COLLECTIONS
from brainmri.inference.explain import DEFAULT_TARGET, TARGETS


def add_collection_args(p) -> None:
    """--origins/--collection: measure on every image of one collection instead of Testing."""
    p.add_argument("--origins", default=None, help="CSV of each image's collection (with --collection)")
    p.add_argument("--collection", choices=COLLECTIONS, help="measure on all its images, not on Testing")


def cmd_localisation(args) -> int:
    from brainmri import Predictor
    from brainmri.data.folders import list_classes, load_folder, split_roots
    from brainmri.data.masks import load_masks
    from brainmri.evaluation.localisation import class_map_similarity, localisation, localisation_markdown
    from brainmri.inference.explain import CLASSLESS, SHOWN_METHODS

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
    methods = tuple(args.method or SHOWN_METHODS)
    options = dict(widen_px=args.widen, target_kind=args.target)
    report = localisation(predictor, image_set.images, masks.masks, image_set.labels, methods, **options)
    report["split"] = args.split
    if args.similarity:  # on every image of the set, with a mask or not
        report["class_map_similarity"] = {
            m: class_map_similarity(predictor, image_set.images, m, args.target) for m in methods if m not in CLASSLESS
        }
        for m, block in report["class_map_similarity"].items():
            print(f"{m} ({args.target}): mean correlation between the class maps {block['mean_correlation']:.3f}")
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


def cmd_figures(args) -> int:
    """Redraw the Model tab's figures of a saved evaluation in every language, from its records only."""
    from brainmri.evaluation import tab_figures
    from brainmri.evaluation.metrics import headline_figures

    metrics_dir = Path(args.metrics)
    saved = json.loads((metrics_dir / "metrics.json").read_text())
    written = headline_figures(saved["full"], saved["full"]["labels"], metrics_dir)
    written += tab_figures.redraw(metrics_dir, args.new_source_answers, args.source)
    for path in written:
        print(path)
    return 0


def register(sub) -> None:
    """Add these commands to ``train.py``'s sub-parsers."""
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
    p.add_argument("--target", choices=sorted(TARGETS), default=DEFAULT_TARGET, help="what a class's map explains")
    p.add_argument("--similarity", action="store_true", help="also how alike the classes' maps are, on every image")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_localisation)

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
    p.add_argument("--verdict-only", action="store_true", help="only the page's verdict (verdict.json; no curves)")
    p.add_argument("--t2-stand-in", action="store_true", help="also judge the tumour slices inverted (T2-like)")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_selective)

    p = sub.add_parser("figures", help="redraw the Model tab's figures of a saved evaluation in every language")
    p.add_argument("--metrics", required=True, help="the evaluation folder (metrics.json, testing-selective/)")
    p.add_argument(
        "--new-source-answers",
        default=None,
        metavar="CSV",
        help="per-slice answers on a source the model never saw (`train.py lgg-eval`'s lgg-slices.csv): "
        "rebuilds risk_coverage.json; without it the saved one is drawn",
    )
    p.add_argument("--source", default="TCGA-LGG", help="what --new-source-answers are, kept in the record")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("evaluate", help="metrics and figures on Testing (full and de-duplicated)")
    p.add_argument("--checkpoint", required=True, help="release folder or Hub id")
    p.add_argument("--data", required=True, help="dataset root (Training/ + Testing/) or one folder of class folders")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-gallery", action="store_true", help="skip the Grad-CAM gallery")
    p.add_argument("--masks", default=None, help="tumour masks folder: outline the tumour in the Grad-CAM gallery")
    p.set_defaults(func=cmd_evaluate)

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
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser(
        "screening", help="how the app's not-an-MRI / uncertain checks behave on Testing and on outliers"
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_screening)

    p = sub.add_parser("audit", help="exact and near duplicates within and across Training and Testing")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/audit")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_audit)
