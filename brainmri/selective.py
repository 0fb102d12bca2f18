"""Selective prediction: how well does a signal sort right answers before wrong ones?

For a labelled image set and a release, every *signal* gives each image a
confidence score (higher = answer it first). Answering only the most confident
share ``c`` of the images (the *coverage*) leaves a *risk*, the error rate among
the answered ones. The risk–coverage curve and its area (AURC, lower is better;
Geifman & El-Yaniv, 2017) measure the signal; accuracy at fixed coverages
(100, 90, 80, 60 %) says what a user would see.

Signals (each a function of one forward pass, or of a few):

- ``max_probability``: the temperature-scaled top probability (what the page shows);
- ``energy``: ``T * logsumexp(logits / T)`` (Liu et al., 2020);
- ``mahalanobis``: minus the distance of the pooled features to the nearest class
  mean (the release's ``ood.safetensors``, Lee et al., 2018);
- ``tta_agreement``: the mean probability, over test-time views (flip, gamma, blur),
  of the class predicted on the original: low when small changes move the answer;
- ``ensemble``: with other members, the mean over members of the probability of the
  main model's class (members trained with other seeds or recipes disagree on
  what none of them learned).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

COVERAGES = (1.0, 0.9, 0.8, 0.6)


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Risk at every coverage k/n (most confident first; ties keep their order), AURC and accuracy at
    ``COVERAGES``."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool)
    n = len(correct)
    if n == 0:
        raise ValueError("no images to measure")
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order])
    answered = np.arange(1, n + 1)
    risk = errors / answered
    at = {}
    for coverage in COVERAGES:
        k = max(1, int(round(coverage * n)))
        at[f"{round(100 * coverage)}"] = {"accuracy": float(1 - risk[k - 1]), "threshold": float(confidence[order][k - 1])}
    oracle = np.cumsum(np.sort(~correct)) / answered  # errors last: the best any signal could do
    return {"n": n, "aurc": float(risk.mean()), "oracle_aurc": float(oracle.mean()),
            "accuracy": float(correct.mean()), "at_coverage": at,
            "coverage": (answered / n).tolist(), "risk": risk.tolist()}


def threshold_for_accuracy(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict[str, float] | None:
    """The lowest confidence threshold whose answered images (confidence ≥ it) are right at least ``target``
    of the time: the most the page can answer at that accuracy. None when no threshold reaches it."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    accuracy = np.cumsum(correct[order]) / np.arange(1, len(correct) + 1)
    # only cut between distinct values: a threshold answers every image at or above it
    cuts = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])
    good = cuts[accuracy[cuts] >= target]
    if len(good) == 0:
        return None
    k = good.max()
    return {"threshold": float(sorted_conf[k]), "coverage": float((k + 1) / len(correct)), "accuracy": float(accuracy[k])}


def accuracy_at_threshold(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float]:
    """Share answered (confidence ≥ threshold) and accuracy among the answered."""
    answered = np.asarray(confidence) >= threshold
    return {"coverage": float(answered.mean()),
            "accuracy": float(np.asarray(correct)[answered].mean()) if answered.any() else float("nan")}


def signals(predictor, images: np.ndarray, members: list | None = None, *, tta: bool = True) -> dict[str, Any]:
    """Probabilities of ``predictor`` on fitted ``images`` and every signal's confidence per image."""
    logits, features = predictor.logits_and_features(images)
    probs = predictor.probabilities(logits)
    predicted = probs.argmax(1)
    rows = np.arange(len(probs))
    scores: dict[str, np.ndarray] = {
        "max_probability": probs.max(1),
        "energy": (predictor.temperature * torch.logsumexp(logits.float() / predictor.temperature, dim=1)).numpy(),
    }
    if predictor.feature_model is not None:
        scores["mahalanobis"] = -predictor.feature_model.distance(features.double()).numpy()
    if tta:
        scores["tta_agreement"] = predictor.agreement(images, probs)
    if members:
        member_probs = [probs] + [m.probabilities(m.logits(images)) for m in members]
        scores["ensemble"] = np.mean([p[rows, predicted] for p in member_probs], axis=0)
    return {"probabilities": probs, "predicted": predicted, "scores": scores}


def selective_report(predictor, images: np.ndarray, labels: np.ndarray, members: list | None = None,
                     *, tta: bool = True) -> dict[str, Any]:
    """Risk–coverage of every signal on a labelled set (labels index ``predictor.labels``)."""
    result = signals(predictor, images, members, tta=tta)
    correct = result["predicted"] == np.asarray(labels)
    report = {"n": int(len(labels)), "accuracy": float(correct.mean()), "signals": {}}
    for name, confidence in result["scores"].items():
        report["signals"][name] = risk_coverage(confidence, correct)
    for name, confidence in result["scores"].items():
        report["signals"][name]["for_accuracy"] = {f"{target:g}": threshold_for_accuracy(confidence, correct, target)
                                                   for target in (0.9, 0.95, 0.985)}
    report["best_signal"] = min(report["signals"], key=lambda s: report["signals"][s]["aurc"])
    return report


def selective_markdown(report: dict[str, Any]) -> str:
    lines = ["| signal | AURC (lower is better) | accuracy at 100 % | 90 % | 80 % | 60 % answered |",
             "|---|---|---|---|---|---|"]
    for name, block in report["signals"].items():
        at = block["at_coverage"]
        lines.append(f"| {name} | {block['aurc']:.4f} | " + " | ".join(f"{100 * at[k]['accuracy']:.1f} %"
                                                                         for k in ("100", "90", "80", "60")) + " |")
    oracle = next(iter(report["signals"].values()))["oracle_aurc"]
    lines.append(f"| (best possible) | {oracle:.4f} | | | | |")
    return "\n".join(lines)


def verdict_report(predictor, files: list, labels: np.ndarray) -> dict[str, Any]:
    """What the page would say (:meth:`Predictor.screen_batch`: the release's own checks and thresholds)
    on labelled files: the share of each verdict and the accuracy among the "ok" answers."""
    labels = np.asarray(labels)
    counts = {"ok": 0, "uncertain": 0, "not_mri": 0, "unreadable": 0}
    right_ok = 0
    for start in range(0, len(files), 256):
        for result, label in zip(predictor.screen_batch(files[start:start + 256]), labels[start:start + 256]):
            if isinstance(result, Exception):
                counts["unreadable"] += 1
                continue
            probabilities, verdict = result
            counts[verdict.status] += 1
            if verdict.ok:
                right_ok += int(max(probabilities, key=probabilities.get) == predictor.labels[label])
    n = max(1, len(files))
    return {"n": len(files), "counts": counts, "ok_share": counts["ok"] / n,
            "ok_accuracy": right_ok / counts["ok"] if counts["ok"] else float("nan"),
            "settings": dict(predictor.screening)}
