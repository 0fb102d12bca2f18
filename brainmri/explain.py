"""Class activation maps over a timm model, with pytorch-grad-cam's methods.

One forward pass gives both the logits and the heatmap (``cam.outputs``), so
the class shown and the map drawn always agree. Parameters outside the target
layer are frozen by the caller (:func:`freeze_below`), so the backward pass
stops at the target layer instead of running through the whole network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "eigencam": EigenCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "xgradcam": XGradCAM,
}


@dataclass
class CamResult:
    logits: torch.Tensor  # B x C, from the same forward pass as the maps
    heatmaps: np.ndarray  # B x H x W floats in [0, 1]


def freeze_below(model: torch.nn.Module, layer: torch.nn.Module) -> None:
    """Only ``layer``'s parameters keep requires_grad: gradients stop there."""
    keep = {id(p) for p in layer.parameters()}
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)


def class_activation_maps(model: torch.nn.Module, layer: torch.nn.Module, inputs: torch.Tensor,
                          targets: list[int] | None, method: str = "gradcam") -> CamResult:
    """Heatmaps for ``targets`` (None: each image's predicted class), at the input's resolution."""
    try:
        cam_class = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {sorted(METHODS)}") from None
    cam_targets = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    with cam_class(model=model, target_layers=[layer]) as cam:
        heatmaps = cam(input_tensor=inputs, targets=cam_targets)
        logits = cam.outputs.detach().float()
    return CamResult(logits=logits, heatmaps=np.clip(np.nan_to_num(heatmaps), 0.0, 1.0).astype(np.float32))


def overlay(image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """Colour heatmap over a grayscale uint8 image of the same size → H x W x 3 uint8."""
    rgb = np.repeat((image.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return show_cam_on_image(rgb, heatmap, use_rgb=True, image_weight=image_weight)
