"""Does the training-only tumour map find the gliomas the classifier calls "no tumour" on a held-out institution?

    python scripts/tumour_map_probe.py RUN [--lgg ../shared/data/tcga-lgg] [--sites DU]

``RUN`` is a training run folder (``train.py train --seg-weight``): its ``last.pt`` holds the EMA weights and the
1x1-conv tumour map trained beside them (``losses.WithTumourMap``; not released), its ``release/`` the preprocessing
and temperature, its ``split.csv`` the validation split (Kaggle and the training institutions' held-back patients).

For every labelled TCGA-LGG slice of ``--sites`` (never trained on) it prints:

1. "a tumour is here" scored three ways (the classifier's ``1 - P(no tumour)``, the tumour map's highest cell, the
   two averaged): the ROC AUC of glioma against tumour-free slices per sequence, and, as a bound rather than a
   result, the recall each score reaches at a cut fitted on the held-out slices themselves so that 85 % of their
   tumour-free slices are called "no tumour" (issue 27's target);
2. the four-class answer two ways: the classifier's argmax, and the tumour map as the detector (its highest cell's
   logit Platt-scaled on the validation split: ``P(tumour)``) with the classifier naming the tumour
   (``P(class) = P(tumour) x P(class | a tumour)``, ``P(no tumour) = 1 - P(tumour)``): glioma recall per sequence,
   tumour-free slices answered "no tumour", and the Kaggle validation accuracy of each (the shipping rule's figure;
   in-sample for the two Platt parameters).

Prints figures; decides nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from brainmri import Predictor
from brainmri.data.folders import load_run_split
from brainmri.data.lgg import COLLECTION, GLIOMA, NO_TUMOUR, SEQUENCES, load_lgg

TUMOUR_FREE_TARGET = 0.85  # issue 27's tumour-free target on the held-out institution


def forward(predictor: Predictor, tumour_map: torch.nn.Conv2d, fitted, batch_size: int = 64):
    """Calibrated classifier probabilities and the tumour map's highest-cell logit, from one forward pass."""
    probs, peak = [], []
    with torch.no_grad():
        for start in range(0, len(fitted), batch_size):
            logits, feature_map = predictor.backend(
                predictor.preprocess.to_tensor(list(fitted[start : start + batch_size]))
            )
            probs.append(predictor.probabilities(logits.float()))
            peak.append(tumour_map(feature_map.float()).flatten(1).amax(1).numpy())
    return np.concatenate(probs), np.concatenate(peak)


def factorised(probs: np.ndarray, p_tumour: np.ndarray, free: int) -> np.ndarray:
    """``P(no tumour) = 1 - P(tumour)``; each tumour class ``P(tumour)`` times its share of the classifier's tumour
    probability."""
    tumour = np.delete(np.arange(probs.shape[1]), free)
    out = np.empty_like(probs)
    share = probs[:, tumour] / probs[:, tumour].sum(1, keepdims=True).clip(1e-12)
    out[:, tumour] = p_tumour[:, None] * share
    out[:, free] = 1 - p_tumour
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    parser.add_argument("--sites", nargs="+", default=["DU"])
    parser.add_argument("--slices-out", type=Path, help="also write each held-out slice's scores to this CSV")
    args = parser.parse_args()
    predictor = Predictor.from_pretrained(args.run / "release", backend="torch")
    state = torch.load(args.run / "last.pt", map_location="cpu", weights_only=True)
    if not state.get("tumour_map"):
        raise SystemExit(f"{args.run / 'last.pt'} holds no tumour map (trained without --seg-weight)")
    predictor.model.load_state_dict(state["ema"] or state["model"])
    tumour_map = torch.nn.Conv2d(predictor.model.num_features, 1, kernel_size=1)
    tumour_map.load_state_dict(state["tumour_map"])
    free, glioma_index = predictor.labels.index(NO_TUMOUR), predictor.labels.index(GLIOMA)
    print(f"weights: {args.run / 'last.pt'}, epoch {state['epoch']} ({'EMA' if state['ema'] else 'live'})")

    _, val_set = load_run_split(args.run)
    val_probs, val_peak = forward(predictor, tumour_map, val_set.images)
    platt = LogisticRegression(C=1e6).fit(val_peak[:, None], val_set.labels != free)
    kaggle = np.array([not p.startswith(f"{COLLECTION}/") for p in val_set.paths])
    val_factorised = factorised(val_probs, platt.predict_proba(val_peak[:, None])[:, 1], free)
    print(
        f"Platt scaling fitted on the {len(val_set)} validation slices: a = {platt.coef_[0, 0]:.3f}, "
        f"b = {platt.intercept_[0]:.3f}; Kaggle validation accuracy: classifier "
        f"{100 * (val_probs.argmax(1) == val_set.labels)[kaggle].mean():.2f} %, tumour map as detector "
        f"{100 * (val_factorised.argmax(1) == val_set.labels)[kaggle].mean():.2f} %"
    )

    held = load_lgg(args.lgg, predictor.preprocess, predictor.labels, sites=args.sites)
    probs, peak = forward(predictor, tumour_map, held.images.images)
    glioma = held.images.labels == glioma_index
    detection = {"classifier": 1 - probs[:, free], "tumour map": peak}
    detection["mean of both"] = (detection["classifier"] + 1 / (1 + np.exp(-peak))) / 2
    head = [f"AUC {s}" for s in SEQUENCES] + [f"bound {s}" for s in SEQUENCES]
    print(
        f"\nheld out ({', '.join(args.sites)}): {len(held)} slices; 'a tumour is here'\n| score | "
        + " | ".join(head)
        + " |\n"
        + "|---" * (len(head) + 1)
        + "|"
    )
    for name, score in detection.items():
        cut = np.quantile(score[~glioma], TUMOUR_FREE_TARGET)  # this set's own cut: a bound, not a result
        cells = [f"{roc_auc_score(glioma[held.sequence == s], score[held.sequence == s]):.3f}" for s in SEQUENCES]
        cells += [f"{100 * (score[glioma & (held.sequence == s)] >= cut).mean():.1f}" for s in SEQUENCES]
        print(f"| {name} | " + " | ".join(cells) + " |")

    p_tumour = platt.predict_proba(peak[:, None])[:, 1]
    if args.slices_out:
        rows = ["path,peak_logit,p_tumour_map,p_tumour_classifier"]
        rows += [
            f"{p},{k:.4f},{t:.5f},{1 - c:.5f}" for p, k, t, c in zip(held.images.paths, peak, p_tumour, probs[:, free])
        ]
        args.slices_out.write_text("\n".join(rows) + "\n")
    answers = {
        "classifier": probs,
        "tumour map as detector": factorised(probs, p_tumour, free),
    }
    head = [f"glioma {s}" for s in SEQUENCES] + ["tumour-free", "all"]
    print("\nthe four-class answer\n| answer | " + " | ".join(head) + " |\n" + "|---" * (len(head) + 1) + "|")
    for name, p in answers.items():
        right = p.argmax(1) == held.images.labels
        cells = [f"{100 * right[glioma & (held.sequence == s)].mean():.1f}" for s in SEQUENCES]
        cells += [f"{100 * right[~glioma].mean():.1f}", f"{100 * right.mean():.1f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
