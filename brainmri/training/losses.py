"""What a training step minimises besides cross-entropy: the auxiliary tumour map and the Grad-CAM loss (the
share of the true class's heat outside the radiologists' mask)."""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


class WithTumourMap(torch.nn.Module):
    """The classifier plus what training may ask of its last feature map (training only; not released):

    - a 1x1-conv *tumour map* (``seg``): the feature map must say where the tumour is;
    - the *Grad-CAM of the true class* (``cam``), computed differentiably (the gradient of the class score
      with respect to the feature map, ``create_graph=True``, through the small head only), so that a loss
      can ask the heatmap itself to lie on the tumour ("right for the right reasons", Ross et al., 2017).
    """

    def __init__(self, model: torch.nn.Module, seg: bool = True, cam: bool = False):
        super().__init__()
        self.model = model
        self.tumour_map = torch.nn.Conv2d(model.num_features, 1, kernel_size=1) if seg else None
        self.cam = cam

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        features = self.model.forward_features(x)
        logits = self.model.forward_head(features)
        tumour_map = self.tumour_map(features) if self.tumour_map is not None else None
        cam = None
        if self.cam and targets is not None and torch.is_grad_enabled():
            score = logits.gather(1, targets[:, None]).sum()
            gradient = torch.autograd.grad(score, features, create_graph=True)[0]
            cam = F.relu((gradient.mean(dim=(2, 3), keepdim=True) * features).sum(1))  # B x h x w
        return logits, tumour_map, cam


def tumour_map_loss(tumour_map: torch.Tensor, masks: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the tumour map against each cell's tumour fraction, on supervised images."""
    if not bool(supervised.any()):
        return tumour_map.sum() * 0.0
    target = F.adaptive_avg_pool2d(masks.float(), tumour_map.shape[-2:])
    return F.binary_cross_entropy_with_logits(tumour_map.float()[supervised], target[supervised])


@lru_cache(maxsize=16)
def _peak_pixels(cells: int, pixels: int) -> torch.Tensor:
    """Where a heatmap of ``cells`` scaled bilinearly to ``pixels`` (half-pixel centres, as pytorch-grad-cam's
    cv2.resize) peaks when one cell is hot: the first pixel of the largest weight, per cell (its centre
    inside the map, the outer edge for a border cell)."""
    one_hot = torch.eye(cells)[:, None, :]  # cells x 1 x cells
    return F.interpolate(one_hot, size=pixels, mode="linear", align_corners=False)[:, 0].argmax(1)


def cam_target_cells(
    masks: torch.Tensor, grid: tuple[int, int], target: str = "widened", widen_px: int = 2
) -> torch.Tensor:
    """Which cells of a ``grid`` heatmap count as "on the tumour" for ``masks`` (``B x 1 x H x W``) → ``B x h x w``.

    ``"widened"``: cells touching the mask, widened by one cell. ``"centres"``: cells whose centre pixel lies in
    the mask widened by ``widen_px`` pixels, the localisation yardstick's own rule (a heatmap scaled to the input
    peaks on a cell centre); where no centre does (a tumour smaller than a cell), the cells touching the mask."""
    touching = F.adaptive_max_pool2d((masks > 0).float(), grid)
    if target == "widened":
        return F.max_pool2d(touching, 3, stride=1, padding=1)[:, 0]
    if target != "centres":
        raise ValueError(f"unknown Grad-CAM target {target!r}; choose widened or centres")
    height, width = masks.shape[-2:]
    widened = F.max_pool2d((masks > 0.5).float(), 2 * widen_px + 1, stride=1, padding=widen_px)
    rows, cols = (_peak_pixels(cells, pixels).to(masks.device) for cells, pixels in zip(grid, (height, width)))
    centres = widened[:, :, rows][:, :, :, cols]
    none_hit = centres.flatten(1).amax(1) == 0
    return torch.where(none_hit.view(-1, 1, 1, 1), touching, centres)[:, 0]


def cam_outside_loss(cam: torch.Tensor, masks: torch.Tensor, target: str = "widened") -> torch.Tensor:
    """The share of the true class's Grad-CAM outside the tumour cells (:func:`cam_target_cells`), on images
    with a tumour mask; 0 for a heatmap all on the tumour."""
    cells = cam_target_cells(masks, tuple(cam.shape[-2:]), target)
    has_tumour = cells.flatten(1).amax(1) > 0
    if not bool(has_tumour.any()):
        return cam.sum() * 0.0
    cam, cells = cam[has_tumour].float(), cells[has_tumour]
    share = (cam * cells).flatten(1).sum(1) / cam.flatten(1).sum(1).clamp_min(1e-6)
    return (1 - share).mean()


class GroupRobust:
    """Group DRO (Sagawa et al., "Distributionally robust neural networks", ICLR 2020): the classification loss is
    a weighted mean over groups of training images (here a source and a class: the cells ``--balance sources``
    draws evenly), and after every step each group's weight grows by ``exp(step x its mean loss)``, so the groups
    the model does worst on weigh most; a batch's loss is normalised by the weights of the groups it holds. The
    weights are training state (saved with the run, restored on resume)."""

    def __init__(self, groups: int, step: float):
        self.step = step
        self.weights = torch.full((groups,), 1.0 / groups)

    def __call__(self, per_image: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The weighted loss of a batch (``per_image``: each image's loss; ``groups``: its group)."""
        size = len(self.weights)
        counts = torch.bincount(groups, minlength=size).to(per_image.dtype)
        means = torch.zeros(size, dtype=per_image.dtype, device=per_image.device).index_add(0, groups, per_image)
        means = means / counts.clamp_min(1)
        present = (counts > 0).cpu()
        self.weights = self.weights * torch.exp(self.step * means.detach().cpu() * present)
        self.weights = self.weights / self.weights.sum()
        here = (self.weights * present).to(per_image.device, per_image.dtype)  # a batch's absent groups weigh nothing
        return (here * means).sum() / here.sum()
