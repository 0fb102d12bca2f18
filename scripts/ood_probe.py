"""Which out-of-distribution signal, fitted on the Kaggle training split alone, tells TCGA-LGG slices apart?

    python scripts/ood_probe.py RELEASE [--lgg ../shared/data/tcga-lgg] [--data ../shared/data/brain-tumor-mri]

For the release's own validation split (seed 0, as train.py splits it; never Testing) and every labelled TCGA-LGG
slice: the share of each set past a threshold at the 95th and 99th percentile of validation, and the accuracy of
the LGG slices left under it. Prints figures; decides nothing (docs/record/decisions.md records what was made of them).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from brainmri import Predictor
from brainmri.data.dedup import duplicate_groups, find_pairs
from brainmri.data.folders import load_folder, split_train_val
from brainmri.data.lgg import load_lgg
from brainmri.evaluation.selective import stage_features
from brainmri.inference.verdict import fit_feature_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("release")
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    parser.add_argument("--data", default="../shared/data/brain-tumor-mri")
    parser.add_argument("--max-train", type=int, default=3000)
    args = parser.parse_args()
    predictor = Predictor.from_pretrained(args.release, backend="torch")
    full = load_folder(f"{args.data}/Training", predictor.preprocess, classes=predictor.labels)
    groups = duplicate_groups(len(full), find_pairs(full.phash, full.images, full.sha256))
    train_index, val_index = split_train_val(full, groups, 0.1, 0)
    train_index = np.sort(np.random.default_rng(0).permutation(train_index)[: args.max_train])
    lgg = load_lgg(args.lgg, predictor.preprocess, predictor.labels)
    sets = {"train": full.subset(train_index), "val": full.subset(val_index), "lgg": lgg.images}
    signals: dict[str, dict[str, np.ndarray]] = {}
    logits = {}
    for name, s in sets.items():
        lg, feats = predictor.logits_and_features(s.images)
        logits[name] = lg
        signals.setdefault("final", {})[name] = feats
        for stage in (1, 2):
            signals.setdefault(f"stage{stage}", {})[name] = stage_features(predictor, s.images, stage)
    scores = {}
    for kind, feats in signals.items():
        model = fit_feature_model(feats["train"], sets["train"].labels, feats["val"])
        scores[f"mahalanobis {kind}"] = {n: model.distance(feats[n].double()).numpy() for n in ("val", "lgg")}
    for n in ("val", "lgg"):
        probs = predictor.probabilities(logits[n])
        scores.setdefault("1 - max probability", {})[n] = 1 - probs.max(1)
        scores.setdefault("minus energy", {})[n] = -torch.logsumexp(logits[n].float(), 1).numpy()
    right = predictor.probabilities(logits["lgg"]).argmax(1) == lgg.images.labels
    print(f"LGG slices: {len(right)}, right {100 * right.mean():.1f} %")
    print("| signal | cut at validation | validation flagged | LGG flagged | LGG right among the rest |")
    print("|---|---|---|---|---|")
    for name, s in scores.items():
        for q in (0.95, 0.99):
            cut = np.quantile(s["val"], q)
            kept = s["lgg"] <= cut
            print(
                f"| {name} | {100 * q:.0f}th percentile | {100 * (s['val'] > cut).mean():.1f} % | "
                f"{100 * (~kept).mean():.1f} % | {100 * right[kept].mean() if kept.any() else float('nan'):.1f} % |"
            )


if __name__ == "__main__":
    main()
