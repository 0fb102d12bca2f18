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


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence over equal-width bins (the usual 15-bin definition)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count, for the reliability diagram."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    out = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        out["count"].append(int(inside.sum()))
        out["confidence"].append(float(confidence[inside].mean()) if inside.any() else float("nan"))
        out["accuracy"].append(float(correct[inside].mean()) if inside.any() else float("nan"))
    return out


def calibrate_release(release: str | Path, train_set, val_set, *, extra_meta: dict[str, Any] | None = None,
                      half: bool = False, max_train: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Fit the temperature and the out-of-distribution feature model on the training run's own
    split (never Testing) and rewrite the release folder with both."""
    from .checkpoint import save_release
    from .predictor import Predictor
    from .screening import DEFAULTS, OOD_FILE, fit_feature_model

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
    screening = {**DEFAULTS, "feature_threshold": feature_model.threshold,
                 "fitted_on": f"{len(chosen)} training-split images; threshold = 99th percentile on {len(val_set)} validation images"}
    save_release(predictor.model, release, predictor.labels, temperature=temperature, half=half,
                 extra={"brainmri": meta, "screening": screening,
                        **({k: config[k] for k in ("sequence_check",) if k in config})},
                 extra_tensors={OOD_FILE: feature_model.tensors()}, preprocessing=predictor.preprocess.release_steps())
    return {"temperature": temperature, "feature_threshold": feature_model.threshold}
