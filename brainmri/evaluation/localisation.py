"""Does the heatmap land on the tumour? The localisation yardstick.

For images with a radiologist's tumour mask (mapped through exactly the image's
preprocessing, :mod:`brainmri.data.masks`), the class activation map of the *true*
class is compared with the mask:

- **pointing game**: the heatmap's peak lies inside the mask widened by
  ``widen`` pixels of the model input (Zhang et al., 2018);
- **energy inside**: the share of the heatmap's total inside the (unwidened) mask;
- **energy ratio**: that share divided by the mask's share of the input; 1.0 is
  what a uniform heatmap scores, higher is better.

Reported per class and over all images, for each CAM method asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from brainmri.evaluation.tables import markdown_table
from brainmri.inference.explain import DEFAULT_TARGET, feature_maps_cams


def widen(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Binary dilation by a square of ``2 * pixels + 1``; ``N x H x W`` bool in and out."""
    if pixels <= 0:
        return masks.astype(bool)
    tensor = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)
    return (F.max_pool2d(tensor, 2 * pixels + 1, stride=1, padding=pixels)[:, 0] > 0).numpy()


def localisation_scores(heatmaps: np.ndarray, masks: np.ndarray, widen_px: int = 2) -> dict[str, np.ndarray]:
    """Per-image pointing hit, energy inside and energy ratio for heatmaps and masks of one size."""
    inside = masks > 0
    flat = heatmaps.reshape(len(heatmaps), -1)
    peaks = flat.argmax(1)
    hit = widen(inside, widen_px).reshape(len(masks), -1)[np.arange(len(masks)), peaks]
    total = flat.sum(1)
    energy = np.where(total > 0, (flat * inside.reshape(len(masks), -1)).sum(1) / np.maximum(total, 1e-12), 0.0)
    share = inside.reshape(len(masks), -1).mean(1)
    return {
        "pointing": hit.astype(bool),
        "energy_inside": energy,
        "mask_share": share,
        "energy_ratio": energy / np.maximum(share, 1e-12),
    }


def _summary(scores: dict[str, np.ndarray], index: np.ndarray) -> dict[str, Any]:
    if len(index) == 0:
        return {"n": 0}
    energy, share = scores["energy_inside"][index], scores["mask_share"][index]
    return {
        "n": int(len(index)),
        "pointing_game": float(scores["pointing"][index].mean()),
        "energy_inside": float(energy.mean()),
        "mask_share": float(share.mean()),
        "energy_ratio": float(energy.mean() / max(share.mean(), 1e-12)),
        "energy_ratio_median": float(np.median(scores["energy_ratio"][index])),
    }


def localisation(
    predictor,
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    methods: tuple[str, ...] = ("gradcam", "gradcam++", "eigencam"),
    *,
    widen_px: int = 2,
    batch_size: int = 32,
    target_kind: str = DEFAULT_TARGET,
) -> dict[str, Any]:
    """The yardstick over fitted ``images`` (N x S x S uint8) with their fitted ``masks`` (>0 inside) and
    true ``labels`` (indices into ``predictor.labels``); the heatmaps explain the true class (``target_kind``:
    see :data:`brainmri.inference.explain.TARGETS`).

    ``energy_ratio`` over a group is mean energy inside / mean mask share (ratio of means)."""
    keep = np.flatnonzero(np.asarray(masks).reshape(len(masks), -1).max(1) > 0)
    images, masks, labels = np.asarray(images)[keep], np.asarray(masks)[keep], np.asarray(labels)[keep]
    size = images.shape[1:3]
    result: dict[str, Any] = {"images": int(len(keep)), "widen_px": widen_px, "input_size": list(size), "methods": {}}
    result["target"] = target_kind
    correct = np.zeros(len(images), dtype=bool)
    grid = None
    for method in methods:
        heatmaps = []
        for start in range(0, len(images), batch_size):
            batch = list(images[start : start + batch_size])
            _, feature_map = predictor.backend(predictor._inputs(batch))
            grid = list(feature_map.shape[-2:])
            cams = feature_maps_cams(
                predictor.model,
                feature_map.to(predictor.device),
                [int(t) for t in labels[start : start + batch_size]],
                size,
                method,
                target_kind,
            )
            heatmaps.append(cams.heatmaps)
            correct[start : start + batch_size] = (
                cams.logits.argmax(1).cpu().numpy() == labels[start : start + batch_size]
            )
        scores = localisation_scores(np.concatenate(heatmaps) if heatmaps else np.zeros((0, *size)), masks, widen_px)
        per_class = {
            name: _summary(scores, np.flatnonzero(labels == i))
            for i, name in enumerate(predictor.labels)
            if (labels == i).any()
        }
        result["methods"][method] = {
            "all": _summary(scores, np.arange(len(images))),
            "per_class": per_class,
            "correctly_classified": _summary(scores, np.flatnonzero(correct)),
        }
    result["accuracy"] = float(correct.mean()) if len(correct) else None
    result["cam_grid"] = grid
    return result


SHARES = ("pointing_game", "energy_inside", "mask_share")  # the summary's figures shown as percentages


def class_map_similarity(
    predictor, images: np.ndarray, method: str, target_kind: str = DEFAULT_TARGET, batch_size: int = 16
) -> dict[str, Any]:
    """How alike the maps of the classes are on the same slice: for each of ``images`` (fitted, N x S x S), the
    Pearson correlation of its class maps, every pair of classes, at the model's input size; their mean over the
    images (1.0: the four maps are one map; a class-discriminative map is lower). Maps without any variation
    (correlation undefined) are counted apart."""
    classes = len(predictor.labels)
    upper = np.triu_indices(classes, k=1)
    values, flat_maps = [], 0
    for start in range(0, len(images), batch_size):
        batch = list(images[start : start + batch_size])
        _, feature_map = predictor.backend(predictor._inputs(batch))
        features = feature_map.to(predictor.device).repeat_interleave(classes, dim=0)
        targets = list(range(classes)) * len(batch)
        cams = feature_maps_cams(predictor.model, features, targets, images.shape[1:3], method, target_kind)
        for maps in cams.heatmaps.reshape(len(batch), classes, -1):
            if (maps.std(axis=1) == 0).any():
                flat_maps += 1
                continue
            values.append(float(np.corrcoef(maps)[upper].mean()))
    return {
        "method": method,
        "target": target_kind,
        "images": int(len(images)),
        "mean_correlation": float(np.mean(values)) if values else None,
        "median_correlation": float(np.median(values)) if values else None,
        "images_with_a_flat_map": flat_maps,
    }


def localisation_markdown(result: dict[str, Any]) -> str:
    header = ("method", "class", "n", "pointing game", "energy inside", "mask share", "energy ratio")
    rows = [
        (method, name, s["n"], *(f"{100 * s[k]:.1f} %" for k in SHARES), f"{s['energy_ratio']:.2f}×")
        for method, block in result["methods"].items()
        for name, s in [("all", block["all"]), *block["per_class"].items()]
        if s["n"]
    ]
    return markdown_table(header, rows)
