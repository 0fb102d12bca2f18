"""Does averaging the test-time views move a release on a held-out TCGA-LGG institution?

    python scripts/tta_probe.py RELEASE [--lgg ../shared/data/tcga-lgg] [--sites DU]

For every labelled slice of ``--sites``: glioma recall per sequence, the tumour-free slices answered "no tumour",
all slices, and the accuracy of the most confident 20 / 40 / 60 % (the risk a confidence threshold could reach), for
the plain image, each of the verdict's test-time views (:data:`~brainmri.inference.preprocess.TEST_TIME_VIEWS`),
two averages of their calibrated probabilities, and the plain image levelled inside the head at test time only
(:func:`~brainmri.inference.preprocess.head_level`, the ``intensity: head`` step, on a release trained without
it). Prints figures; decides nothing (docs/record/ablations.md records what was made of them).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from brainmri import Predictor
from brainmri.data.lgg import GLIOMA, NO_TUMOUR, SEQUENCES, load_lgg
from brainmri.inference.preprocess import head_level

COVERAGES = (0.2, 0.4, 0.6)


def figures(probs: np.ndarray, labels: np.ndarray, sequence: np.ndarray, names: list[str]) -> str:
    right = probs.argmax(1) == labels
    glioma, free = labels == names.index(GLIOMA), labels == names.index(NO_TUMOUR)
    cells = [f"{100 * right[glioma & (sequence == s)].mean():.1f}" for s in SEQUENCES]
    cells += [f"{100 * right[free].mean():.1f}", f"{100 * right.mean():.1f}"]
    order = np.argsort(-probs.max(1))
    cells += [f"{100 * right[order[: int(c * len(order))]].mean():.1f}" for c in COVERAGES]
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release")
    parser.add_argument("--lgg", default="../shared/data/tcga-lgg")
    parser.add_argument("--sites", nargs="+", default=["DU"])
    args = parser.parse_args()
    torch.manual_seed(0)
    predictor = Predictor.from_pretrained(args.release, backend="torch")
    lgg = load_lgg(args.lgg, predictor.preprocess, predictor.labels, sites=args.sites)
    fitted, labels = lgg.images.images, lgg.images.labels
    plain = predictor.probabilities(predictor.logits(fitted))
    views = predictor.view_probabilities(fitted)
    rows = {"plain image": plain, **views}
    rows["mean of the plain image and hflip"] = (plain + views["hflip"]) / 2
    rows["mean of every view"] = (plain + sum(views.values())) / (1 + len(views))
    if predictor.preprocess.intensity == "none":
        levelled = np.stack([head_level(image) for image in fitted])
        rows["levelled inside the head (test time only)"] = predictor.probabilities(predictor.logits(levelled))
    head = [f"glioma {s}" for s in SEQUENCES] + ["tumour-free", "all"] + [f"top {c:.0%} right" for c in COVERAGES]
    print(f"{len(lgg)} slices of {', '.join(args.sites)}\n| view | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for name, probs in rows.items():
        print(f"| {name} | {figures(probs, labels, lgg.sequence, predictor.labels)} |")


if __name__ == "__main__":
    main()
