"""Class activation maps with pytorch-grad-cam's methods, from one forward pass.

The network body runs once (in torch or ONNX Runtime) and gives the logits and
the last feature map. The maps are then computed on the classifier head alone:
pytorch-grad-cam reads activations and gradients at ``FeatureHead.tap``, the
head's input, so the backward pass runs through the small head only and never
through the body. For a timm model whose ``forward_features`` ends at its last
stage (ConvNeXt, ResNet) this is exactly Grad-CAM on that stage, the layer the
library's default call would be given (see ``benchmarks/bench.py``).

Parameters are never touched (the caller freezes them); the feature map is the
only tensor that needs a gradient, so concurrent calls share nothing mutable.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

# Every heatmap method, in one place: key → (pytorch-grad-cam class, its name for people). A new method is one
# line here; it is on the page and in the default measurements when its key is in SHOWN_METHODS.
CAMS = {
    "gradcam": (GradCAM, "Grad-CAM"),
    "gradcam++": (GradCAMPlusPlus, "Grad-CAM++"),
    "eigencam": (EigenCAM, "EigenCAM"),
    "hirescam": (HiResCAM, "HiResCAM"),
    "layercam": (LayerCAM, "LayerCAM"),
    "xgradcam": (XGradCAM, "XGrad-CAM"),
}
SHOWN_METHODS = ("gradcam", "gradcam++", "eigencam")
METHODS = {key: method for key, (method, _) in CAMS.items()}
METHOD_NAMES = {key: name for key, (_, name) in CAMS.items()}
CLASSLESS = {"eigencam"}  # methods whose map is the feature map's first component, the same for every class


class ClassOverOthers:
    """pytorch-grad-cam target: the class's logit minus the mean of the other logits (its gradient: the class's
    less the others' mean; what every class's map shares cancels out)."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        output = model_output if model_output.ndim == 2 else model_output[None]
        others = torch.cat([output[:, : self.category], output[:, self.category + 1 :]], dim=1)
        score = output[:, self.category] - others.mean(dim=1)
        return score if model_output.ndim == 2 else score[0]


class AmongAlternatives:
    """pytorch-grad-cam target. The predicted class: ReST (:class:`ClassifierOutputReST`), its map as before.
    Another class: its logit less the mean of the logits of the other classes not predicted, i.e. where the slice
    looks like this class rather than like the other alternatives. Under ReST those maps all repeated what speaks
    against the predicted class; here they split the remaining evidence between them."""

    def __init__(self, category: int):
        self.category = category
        self.rest = ClassifierOutputReST(category)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        output = model_output if model_output.ndim == 2 else model_output[None]
        predicted = output.argmax(1, keepdim=True)
        alternatives = torch.ones_like(output, dtype=torch.bool)
        alternatives.scatter_(1, predicted, False)
        alternatives[:, self.category] = False
        others = (output * alternatives).sum(1) / alternatives.sum(1).clamp(min=1)
        score = torch.where(predicted[:, 0] == self.category, self.rest(output), output[:, self.category] - others)
        return score if model_output.ndim == 2 else score[0]


# What a class's map explains (docs/record/ablations.md, "heatmap targets", has the figures):
# - "rest": pytorch-grad-cam's ClassifierOutputReST, the class's logit plus its log-probability. The
#   predicted class's map stays close to its logit's (the same pointing game on figshare Testing); another class's
#   map shows what speaks for it rather than for the predicted class, so the four maps differ more.
# - "contrast": the class's logit less the mean of the others' (its map leaves the tumour: pointing game 45 %).
# - "logit": the class's logit alone (every map before; the four classes' maps look alike).
# - "alternatives", the page's: the predicted class's map is ReST's; another class's map is its logit against the
#   other alternatives' mean (:class:`AmongAlternatives`): the four maps of a slice barely correlate (0.07 on
#   Testing, was 0.74) at the same pointing game.
TARGETS = {
    "alternatives": AmongAlternatives,
    "rest": ClassifierOutputReST,
    "contrast": ClassOverOthers,
    "logit": ClassifierOutputTarget,
}
DEFAULT_TARGET = "alternatives"


@dataclass
class CamResult:
    logits: torch.Tensor  # B x C, from the same forward pass as the maps
    heatmaps: np.ndarray  # B x H x W floats in [0, 1]


class FeatureHead(torch.nn.Module):
    """``model``'s classifier head as a module of its own, with ``tap`` on its input (the feature map)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.tap = torch.nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.tap(features))

    def train(self, mode: bool = True) -> "FeatureHead":
        """This module's flag only: pytorch-grad-cam calls ``eval()`` on it for every heatmap, which would walk the
        whole network each time (about 0.5 ms on the bundled model); :func:`feature_maps_cams` sets the network's
        mode itself, once."""
        self.training = mode
        return self


def cam_method(method: str):
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {sorted(METHODS)}") from None


def feature_maps_cams(
    model: torch.nn.Module,
    features: torch.Tensor,
    targets: list[int] | None,
    size: tuple[int, int],
    method: str = "gradcam",
    target_kind: str = DEFAULT_TARGET,
) -> CamResult:
    """Heatmaps from the body's feature map (``B x C x h x w``) for ``targets`` (None: each image's
    predicted class), scaled to ``size`` = (height, width) of the model input; ``target_kind``: a key of
    :data:`TARGETS`."""
    cam_class = cam_method(method)
    if target_kind not in TARGETS:
        raise ValueError(f"unknown heatmap target {target_kind!r}; choose one of {sorted(TARGETS)}")
    if model.training:  # pytorch-grad-cam's eval() no longer reaches the network (FeatureHead.train): set it here
        model.eval()
    if targets is None:
        with torch.no_grad():
            targets = FeatureHead(model)(features.float()).argmax(1).tolist()
    cam_targets = [TARGETS[target_kind](int(t)) for t in targets]
    features = features.detach().float().clone().requires_grad_(True)
    head = FeatureHead(model)
    with torch.enable_grad(), cam_class(model=head, target_layers=[head.tap]) as cam:
        small = cam(input_tensor=features, targets=cam_targets)  # B x h x w, each scaled to [0, 1]
        logits = cam.outputs.detach().float()
    heatmaps = scale_cam_image(np.nan_to_num(small), (size[1], size[0]))
    return CamResult(logits=logits, heatmaps=np.clip(heatmaps, 0.0, 1.0).astype(np.float32))


HEATMAP_OPACITY = 0.6  # the colour's weight in an overlay where the heat is highest
HEATMAP_COLOURS = cv2.COLORMAP_VIRIDIS  # perceptually even and readable with every common colour-vision deficiency


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = HEATMAP_OPACITY) -> np.ndarray:
    """Colour heatmap over a grayscale uint8 image of the same size → H x W x 3 uint8. The colour's weight grows
    with the heat, up to ``opacity`` at the hottest point: where the map is cold the slice is left as it is."""
    gray = (image.astype(np.float32) / 255.0)[..., None]  # broadcast over the three colours
    heat = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    colours = cv2.applyColorMap(np.uint8(np.round(255 * heat)), HEATMAP_COLOURS)[..., ::-1].astype(np.float32) / 255
    weight = opacity * heat[..., None]
    return np.uint8(np.round(255 * ((1.0 - weight) * gray + weight * colours)))
