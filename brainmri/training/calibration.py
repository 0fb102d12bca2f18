"""Temperature scaling (Guo et al., 2017): one scalar, fitted on validation logits; and the release's
after-training fit (temperature and screening statistics, on the run's own split: :func:`calibrate_release`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 minimising the NLL of ``softmax(logits / T)`` on held-out data."""
    from scipy.optimize import minimize_scalar

    logits, labels = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / np.exp(log_t), labels))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def confidence_for_ok(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, target: float, floor: float
) -> dict[str, Any]:
    """The verdict's confidence threshold: the lowest at which answers are right at least ``target`` of the time in
    every group of the validation split (e.g. each source: a mixed figure would let the larger source carry the
    smaller), never below ``floor``. A group that reaches ``target`` at no threshold sets it to 1.0."""
    from brainmri.evaluation.selective import threshold_for_accuracy

    top, correct = probs.max(1), probs.argmax(1) == labels
    per_group = {}
    for group in np.unique(groups):
        here = groups == group
        found = threshold_for_accuracy(top[here], correct[here], target)
        per_group[str(group)] = {"n": int(here.sum()), **(found or {"threshold": 1.0, "coverage": 0.0})}
    threshold = max([floor] + [g["threshold"] for g in per_group.values()])
    return {"min_confidence": float(threshold), "ok_target": target, "by_group": per_group}


def calibrate_release(
    release: str | Path,
    train_set,
    val_set,
    *,
    extra_meta: dict[str, Any] | None = None,
    half: bool = False,
    max_train: int = 3000,
    seed: int = 0,
    ok_target: float | None = None,
) -> dict[str, Any]:
    """Fit the temperature and the out-of-distribution feature model on the training run's own
    split (never Testing) and rewrite the release folder with both. ``ok_target``: also fit the verdict's
    confidence threshold (:func:`confidence_for_ok`, each source of the validation split apart)."""
    from brainmri.inference.predictor import Predictor
    from brainmri.inference.release import save_release
    from brainmri.inference.verdict import DEFAULTS, OOD_FILE, fit_feature_model

    predictor = Predictor.from_pretrained(release, backend="torch")
    val_logits, val_features = predictor.logits_and_features(val_set.images)
    temperature = fit_temperature(val_logits, torch.from_numpy(val_set.labels))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(train_set))[:max_train])
    _, train_features = predictor.logits_and_features(train_set.images[chosen])
    feature_model = fit_feature_model(train_features, train_set.labels[chosen], val_features)
    config = predictor.config
    meta = dict(config.get("brainmri", {}))
    meta.update(extra_meta or {})
    screening = {
        **DEFAULTS,
        "feature_threshold": feature_model.threshold,
        "fitted_on": f"{len(chosen)} training-split images; threshold = 99th percentile on {len(val_set)} "
        "validation images",
    }
    fitted = None
    if ok_target is not None:
        from brainmri.data.lgg import (
            COLLECTION,  # a run's TCGA-LGG slices are the paths under this prefix (Trainer._add_lgg)
        )

        sources = np.array([COLLECTION if p.startswith(f"{COLLECTION}/") else "kaggle" for p in val_set.paths])
        probs = torch.softmax(val_logits.double() / temperature, -1).numpy()
        fitted = confidence_for_ok(probs, val_set.labels, sources, ok_target, DEFAULTS["min_confidence"])
        screening.update(min_confidence=fitted["min_confidence"], min_confidence_fit=fitted)
    save_release(
        predictor.model,
        release,
        predictor.labels,
        temperature=temperature,
        half=half,
        extra={
            "brainmri": meta,
            "screening": screening,
            **({k: config[k] for k in ("sequence_check", "flair_check") if k in config}),
        },
        extra_tensors={OOD_FILE: feature_model.tensors()},
        preprocessing=predictor.preprocess.release_steps(),
    )
    return {
        "temperature": temperature,
        "feature_threshold": feature_model.threshold,
        **({"min_confidence": fitted} if fitted else {}),
    }
