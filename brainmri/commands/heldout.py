"""`train.py` commands that judge a release on a source it never trained on: a held-out Kaggle collection
(heldout-eval, heldout-summary) and TCGA-LGG (lgg-eval)."""

from __future__ import annotations

import json
from pathlib import Path


def _print_heldout(collection: str, m: dict) -> None:
    recalls = " / ".join(f"{name} {100 * v['recall']:.1f}" for name, v in m["per_class"].items() if v["support"])
    print(
        f"held-out {collection}: n={m['n']} accuracy {100 * m['accuracy']:.2f} % "
        f"[{100 * m['accuracy_ci95'][0]:.2f}, {100 * m['accuracy_ci95'][1]:.2f}]  recall {recalls}"
    )


def _training_stages(run: Path) -> list[dict]:
    """A run and the runs it was fine-tuned from (``--init RUN/release``), first stage first: name and epochs."""
    stages = []
    while run is not None and (run / "args.json").is_file():
        recipe = json.loads((run / "args.json").read_text())
        stages.insert(0, {"run": run.name, "epochs": recipe.get("epochs"), "init": recipe.get("init")})
        init = Path(recipe["init"]) if recipe.get("init") else None
        run = init.parent if init is not None and init.name == "release" and init.parent != run else None
    return stages


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


def register(sub) -> None:
    """Add these commands to ``train.py``'s sub-parsers."""
    p = sub.add_parser(
        "heldout-summary", help="gather crossval runs (heldout/metrics.json, selective.json) into one JSON"
    )
    p.add_argument("--run", action="append", required=True, help="COLLECTION=RUN_FOLDER (repeat)")
    p.add_argument("--out", required=True, help="e.g. assets/metrics/crossval.json")
    p.set_defaults(func=cmd_heldout_summary)

    p = sub.add_parser("heldout-eval", help="judge a release trained without a collection on every image of it")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--origins", required=True, help="CSV of each image's collection (file,origin)")
    p.add_argument("--collection", required=True, choices=["figshare", "sartaj", "br35h"])
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_heldout_eval)

    p = sub.add_parser("lgg-eval", help="judge a release on TCGA-LGG slices (per sequence, with the verdict)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--lgg", required=True, help="the TCGA-LGG folder (slices.csv, <patient>/NNN_<sequence>.jpg)")
    p.add_argument("--sites", nargs="+", default=None, help="institutions to judge on (default: all)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-pointing", dest="pointing", action="store_false", help="skip the Grad-CAM pointing game")
    p.add_argument("--name", default=None, help="how tables name the model judged (default: architecture and weights)")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_lgg_eval)
