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
  what none of them learned);
- ``mc_dropout``: the mean probability of the predicted class over passes with the
  head's dropout left on (Gal & Ghahramani, 2016; the body runs once);
- ``mahalanobis_stage{k}`` and ``mahalanobis_depths``: the Mahalanobis distance on the
  pooled output of an earlier stage, fitted like the release's on training-split
  images, and the sum of both depths' distances, each divided by its median on
  validation images (Lee et al., 2018, use several depths).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from brainmri.evaluation.tables import markdown_table

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
        at[f"{round(100 * coverage)}"] = {
            "accuracy": float(1 - risk[k - 1]),
            "threshold": float(confidence[order][k - 1]),
        }
    oracle = np.cumsum(np.sort(~correct)) / answered  # errors last: the best any signal could do
    return {
        "n": n,
        "aurc": float(risk.mean()),
        "oracle_aurc": float(oracle.mean()),
        "accuracy": float(correct.mean()),
        "at_coverage": at,
        "coverage": (answered / n).tolist(),
        "risk": risk.tolist(),
    }


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
    return {
        "threshold": float(sorted_conf[k]),
        "coverage": float((k + 1) / len(correct)),
        "accuracy": float(accuracy[k]),
    }


def accuracy_at_threshold(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float]:
    """Share answered (confidence ≥ threshold) and accuracy among the answered."""
    answered = np.asarray(confidence) >= threshold
    return {
        "coverage": float(answered.mean()),
        "accuracy": float(np.asarray(correct)[answered].mean()) if answered.any() else float("nan"),
    }


def mc_dropout_agreement(
    predictor,
    images: np.ndarray,
    probs: np.ndarray,
    passes: int = 16,
    seed: int = 0,
    batch_size: int = 64,
    rate: float | None = None,
) -> np.ndarray | None:
    """Mean probability of each image's predicted class (from ``probs``) over ``passes`` forward passes of
    the head with its dropout on, at ``rate`` (default: the rate the release was trained with, from its
    config; a loaded timm model keeps its Dropout modules at p = 0). None without dropout. The body runs
    once per batch."""
    model = predictor.model
    rate = rate if rate is not None else predictor.release.training.get("drop_rate")
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    if not rate or not drops:
        return None
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    predicted, out, saved = probs.argmax(1), [], [m.p for m in drops]
    try:
        for m in drops:
            m.p = rate
            m.train()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                _, feature_map = predictor.backend(predictor._inputs(list(images[start : start + batch_size])))
                feature_map = feature_map.to(predictor.device).float()
                rows = np.arange(len(feature_map))
                chosen = predicted[start : start + len(rows)]
                mean = np.zeros(len(rows))
                for _ in range(passes):
                    mean += predictor.probabilities(model.forward_head(feature_map).cpu())[rows, chosen] / passes
                out.append(mean)
    finally:
        for m, p in zip(drops, saved):
            m.p = p
            m.eval()
        torch.set_rng_state(generator_state)
    return np.concatenate(out) if out else np.zeros(0)


def stage_features(predictor, images: np.ndarray, stage: int, batch_size: int = 64) -> torch.Tensor:
    """Average-pooled output of the network's stage ``stage`` (timm ``forward_intermediates``) for fitted images."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = predictor._inputs(list(images[start : start + batch_size]))
            feature_map = predictor.model.forward_intermediates(x, indices=[stage], intermediates_only=True)[0]
            out.append(feature_map.float().mean((2, 3)).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def depth_models(
    predictor, train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray, stage: int
) -> dict[str, Any]:
    """Mahalanobis feature models on an earlier stage's pooled output (fitted on training-split images) and
    the validation medians that put it and the release's own distance on one scale."""
    from brainmri.inference.verdict import fit_feature_model

    val_stage = stage_features(predictor, val_images, stage)
    model = fit_feature_model(stage_features(predictor, train_images, stage), np.asarray(train_labels), val_stage)
    _, val_final = predictor.logits_and_features(val_images)
    return {
        "stage": stage,
        "model": model,
        "median": float(model.distance(val_stage.double()).median()),
        "final_median": float(predictor.feature_model.distance(val_final.double()).median()),
    }


def signals(
    predictor,
    images: np.ndarray,
    members: list | None = None,
    *,
    tta: bool = True,
    mc_passes: int = 16,
    mc_rate: float | None = None,
    depths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Probabilities of ``predictor`` on fitted ``images`` and every signal's confidence per image
    (``depths``: from :func:`depth_models`, for the earlier-stage Mahalanobis signals)."""
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
    if mc_passes:
        mc = mc_dropout_agreement(predictor, images, probs, mc_passes, rate=mc_rate)
        if mc is not None:
            scores["mc_dropout"] = mc
    if depths and predictor.feature_model is not None:
        earlier = depths["model"].distance(stage_features(predictor, images, depths["stage"]).double()).numpy()
        final = predictor.feature_model.distance(features.double()).numpy()
        scores[f"mahalanobis_stage{depths['stage']}"] = -earlier
        scores["mahalanobis_depths"] = -(earlier / depths["median"] + final / depths["final_median"])
    return {"probabilities": probs, "predicted": predicted, "scores": scores}


def selective_report(
    predictor, images: np.ndarray, labels: np.ndarray, members: list | None = None, **options
) -> dict[str, Any]:
    """Risk–coverage of every signal on a labelled set (labels index ``predictor.labels``; ``options``: those of
    :func:`signals`)."""
    result = signals(predictor, images, members, **options)
    correct = result["predicted"] == np.asarray(labels)
    report = {"n": int(len(labels)), "accuracy": float(correct.mean()), "signals": {}}
    for name, confidence in result["scores"].items():
        report["signals"][name] = risk_coverage(confidence, correct)
    for name, confidence in result["scores"].items():
        report["signals"][name]["for_accuracy"] = {
            f"{target:g}": threshold_for_accuracy(confidence, correct, target) for target in (0.9, 0.95, 0.985)
        }
    report["best_signal"] = min(report["signals"], key=lambda s: report["signals"][s]["aurc"])
    return report


def selective_markdown(report: dict[str, Any]) -> str:
    header = ("signal", "AURC (lower is better)", "accuracy at 100 %", "90 %", "80 %", "60 % answered")
    coverages = ("100", "90", "80", "60")
    rows = [
        (name, f"{block['aurc']:.4f}", *(f"{100 * block['at_coverage'][k]['accuracy']:.1f} %" for k in coverages))
        for name, block in report["signals"].items()
    ]
    oracle = next(iter(report["signals"].values()))["oracle_aurc"]
    return markdown_table(header, [*rows, ("(best possible)", f"{oracle:.4f}", "", "", "", "")])


def verdict_report(predictor, files: list, labels: np.ndarray, transform=None) -> dict[str, Any]:
    """What the page would say (:meth:`Predictor.screen_batch`: the release's own checks and thresholds)
    on labelled files: the share of each verdict, the accuracy among the "ok" answers, how often each check
    decided, and the share of confident "no tumour" answers on tumour slices (the answer a clinician can
    least afford). ``transform``: a function of the decoded grayscale applied first (e.g. the T2-like
    stand-in, :func:`brainmri.inference.sequence_check.invert_inside_head`)."""
    from brainmri.io.images import load_grayscale

    labels = np.asarray(labels)
    counts = {"ok": 0, "uncertain": 0, "not_mri": 0, "unreadable": 0}
    codes: dict[str, int] = {}
    right_ok = missed_ok = 0
    tumours = int(sum(predictor.labels[label] != "notumor" for label in labels))
    for start in range(0, len(files), 256):
        chunk = files[start : start + 256]
        if transform is not None:
            chunk = [transform(load_grayscale(f)) for f in chunk]
        for result, label in zip(predictor.screen_batch(chunk), labels[start : start + 256]):
            if isinstance(result, Exception):
                counts["unreadable"] += 1
                continue
            probabilities, verdict = result
            counts[verdict.status] += 1
            codes[verdict.code or "ok"] = codes.get(verdict.code or "ok", 0) + 1
            if verdict.ok:
                answer = max(probabilities, key=probabilities.get)
                right_ok += int(answer == predictor.labels[label])
                missed_ok += int(answer == "notumor" and predictor.labels[label] != "notumor")
    n = max(1, len(files))
    return {
        "n": len(files),
        "counts": counts,
        "ok_share": counts["ok"] / n,
        "ok_accuracy": right_ok / counts["ok"] if counts["ok"] else float("nan"),
        "codes": codes,
        "tumours": tumours,
        "tumours_ok_as_notumor": missed_ok / tumours if tumours else float("nan"),
        "settings": dict(predictor.screening),
        "sequence_check": predictor.sequence_check is not None,
    }
