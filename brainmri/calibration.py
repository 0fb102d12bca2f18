"""Temperature scaling (Guo et al., 2017): one scalar, fitted on validation logits."""
from __future__ import annotations

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
