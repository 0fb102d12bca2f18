"""Training-only augmentation, applied to a whole uint8 batch at once.

Per-image PIL transforms cost more than the model step on two CPU cores, so the
augmentation works on the cached, already-resized batch: one ``affine_grid`` /
``grid_sample`` call for rotation, flip, random resized crop (scale, aspect,
translation), then intensity changes. Two strengths: ``"report"`` is the research
report's recipe (rotation ±10°, horizontal flip, brightness/contrast jitter,
random resized crop); ``"strong"`` adds what scans from other sites differ in
(gamma, blur, noise, wider scale and framing changes) for training from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 10.0
    hflip: float = 0.5
    scale: tuple[float, float] = (0.8, 1.0)  # area fraction kept by the random resized crop
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.2
    contrast: float = 0.2
    gamma: tuple[float, float] = (1.0, 1.0)
    blur_prob: float = 0.0
    noise_std: float = 0.0
    zoom_out: float = 1.0  # >1 lets the crop reach beyond the image (smaller brain in a black frame)
    invert_prob: float = 0.0  # T1 <-> T2-like: invert the tissue inside the head, background stays black
    curve_prob: float = 0.0  # a random monotone intensity curve (scanner and sequence contrast differ)
    marker_prob: float = 0.0  # letters, an arrow or a scale bar burnt in near the edges, as viewers export them

    @classmethod
    def named(cls, name: str) -> "AugmentConfig":
        if name == "report":
            return cls()
        if name == "strong":
            return cls(
                rotate_deg=15.0,
                scale=(0.6, 1.0),
                brightness=0.3,
                contrast=0.35,
                gamma=(0.6, 1.6),
                blur_prob=0.2,
                noise_std=0.03,
                zoom_out=1.3,
            )
        if name == "none":
            return cls(rotate_deg=0.0, hflip=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), brightness=0.0, contrast=0.0)
        raise ValueError(f"unknown augmentation {name!r}; choose report, strong or none")


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def augment_batch(
    images: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
    masks: torch.Tensor | None = None,
):
    """Augment ``B x 1 x H x W`` images in [0, 1] (float); returns the same shape, clamped to [0, 1].

    With ``masks`` (``B x 1 x H x W`` in [0, 1]), they follow the same geometry and ``(images, masks)``
    is returned; the random draws are the same with or without them."""
    n, device = images.shape[0], images.device
    # Random resized crop as an affine map: the output samples a window whose area
    # is `scale` of the input and whose aspect ratio is `ratio`, at a random place.
    area = _uniform(n, *cfg.scale, generator, device)
    if cfg.zoom_out > 1.0:
        area = torch.where(
            torch.rand(n, generator=generator, device=device) < 0.3,
            _uniform(n, 1.0, cfg.zoom_out**2, generator, device),
            area,
        )
    log_ratio = _uniform(n, math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), generator, device)
    aspect = torch.exp(log_ratio)
    half_w = torch.sqrt(area * aspect)
    half_h = torch.sqrt(area / aspect)
    tx = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - half_w).abs()
    ty = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - half_h).abs()
    angle = _uniform(n, -cfg.rotate_deg, cfg.rotate_deg, generator, device) * (math.pi / 180)
    flip = torch.where(torch.rand(n, generator=generator, device=device) < cfg.hflip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * half_w * flip, -sin * half_h, tx], dim=1),
            torch.stack([sin * half_w * flip, cos * half_h, ty], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    stacked = images if masks is None else torch.cat([images, masks.to(images.dtype)], dim=1)
    stacked = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = stacked[:, :1].contiguous()

    if cfg.blur_prob > 0:
        out = _random_blur(out, cfg.blur_prob, generator)
    shape = (n, 1, 1, 1)
    if cfg.gamma != (1.0, 1.0):
        log_gamma = _uniform(n, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), generator, device)
        out = out.clamp_min(0).pow(torch.exp(log_gamma).view(shape))
    if cfg.contrast > 0:
        factor = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, generator, device).view(shape)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * factor + mean
    if cfg.brightness > 0:
        out = out * _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, generator, device).view(shape)
    if cfg.noise_std > 0:
        std = _uniform(n, 0, cfg.noise_std, generator, device).view(shape)
        out = out + torch.randn(out.shape, generator=generator, device=device) * std
    out = out.clamp_(0, 1)
    if cfg.curve_prob > 0:
        out = _random_curves(out, cfg.curve_prob, generator)
    if cfg.invert_prob > 0:
        out = _random_inversion(out, cfg.invert_prob, generator)
    if cfg.marker_prob > 0:
        out = _random_markers(out, cfg.marker_prob, generator)
    if masks is None:
        return out
    return out, stacked[:, 1:].clamp(0, 1)


def head_region(images: torch.Tensor, level: float = 15 / 255) -> torch.Tensor:
    """Pixels of the head (brighter than ``level``), widened by 2 px: the rest is background."""
    return F.max_pool2d((images > level).to(images.dtype), 5, stride=1, padding=2) > 0


def _random_inversion(images: torch.Tensor, prob: float, generator) -> torch.Tensor:
    """Invert the tissue inside the head of a random share of the batch (as ``robustness`` does)."""
    chosen = (torch.rand(images.shape[0], generator=generator, device=images.device) < prob).view(-1, 1, 1, 1)
    inverted = torch.where(head_region(images), 1 - images, torch.zeros_like(images))
    return torch.where(chosen, inverted, images)


MARKERS = ("A", "P", "R", "L", "S", "I", "arrow", "ruler")
EDGE_BAND = 0.15  # markers land within this share of the side from an edge


@lru_cache(maxsize=8)
def marker_stamps(size: int) -> torch.Tensor:
    """What a viewer burns into an exported slice: orientation letters, an arrow, a scale bar; ``K x size x size``
    in [0, 1], white strokes on black."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(6, int(size * 0.9)))
    stamps = []
    for name in MARKERS:
        stamp = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(stamp)
        if name == "arrow":
            middle, width = size // 2, max(1, size // 8)
            draw.line([(1, middle), (size - 2, middle)], fill=255, width=width)
            draw.polygon([(size - 1, middle), (size // 2, 1), (size // 2, size - 2)], fill=255)
        elif name == "ruler":
            draw.line([(0, size - 2), (size - 1, size - 2)], fill=255, width=max(1, size // 10))
            for x in range(0, size, max(2, size // 5)):
                draw.line([(x, size // 2), (x, size - 2)], fill=255, width=1)
        else:
            draw.text((size / 2, size / 2), name, fill=255, font=font, anchor="mm")
        stamps.append(torch.from_numpy(np.asarray(stamp, dtype=np.float32) / 255.0))
    return torch.stack(stamps)


def _random_markers(images: torch.Tensor, prob: float, generator, most: int = 3) -> torch.Tensor:
    """Burn one to ``most`` markers (:func:`marker_stamps`) near the edges of a random share of the batch, at a random
    brightness (0.6-1.0), drawn over the slice as a viewer draws them."""
    n, _, height, width = images.shape
    size = max(8, min(height, width) // 8)
    stamps = marker_stamps(size).to(images.device)
    chosen = torch.rand(n, generator=generator) < prob
    out = images.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        for _ in range(int(torch.randint(1, most + 1, (1,), generator=generator))):
            stamp = stamps[int(torch.randint(len(stamps), (1,), generator=generator))]
            side = int(torch.randint(4, (1,), generator=generator))
            band_y, band_x = max(1, int(EDGE_BAND * height) - size), max(1, int(EDGE_BAND * width) - size)
            along_y = int(torch.randint(0, height - size + 1, (1,), generator=generator))
            along_x = int(torch.randint(0, width - size + 1, (1,), generator=generator))
            near_y = int(torch.randint(0, band_y + 1, (1,), generator=generator))
            near_x = int(torch.randint(0, band_x + 1, (1,), generator=generator))
            top, left = [
                (near_y, along_x),
                (height - size - near_y, along_x),
                (along_y, near_x),
                (along_y, width - size - near_x),
            ][side]
            brightness = 0.6 + 0.4 * float(torch.rand(1, generator=generator))
            patch = out[i, 0, top : top + size, left : left + size]
            out[i, 0, top : top + size, left : left + size] = torch.maximum(patch, stamp * brightness)
    return out


def _random_curves(images: torch.Tensor, prob: float, generator, knots: int = 5) -> torch.Tensor:
    """A random monotone piecewise-linear intensity curve per chosen image (0 stays 0, 1 stays 1)."""
    n, device = images.shape[0], images.device
    steps = torch.rand(n, knots, generator=generator, device=device) + 0.15
    ys = torch.cat([torch.zeros(n, 1, device=device), torch.cumsum(steps, 1) / steps.sum(1, keepdim=True)], 1)
    position = images.clamp(0, 1) * knots
    index = position.floor().clamp(max=knots - 1).long()
    low = torch.gather(ys, 1, index.flatten(1)).view_as(images)
    high = torch.gather(ys, 1, (index + 1).flatten(1)).view_as(images)
    curved = low + (position - index) * (high - low)
    chosen = (torch.rand(n, generator=generator, device=device) < prob).view(-1, 1, 1, 1)
    return torch.where(chosen, curved, images)


def draw_donors(
    recipient_groups: torch.Tensor, donors: torch.Tensor, donor_groups: torch.Tensor, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One donor for each recipient, drawn uniformly among the donors of the recipient's own group (a source, and
    for TCGA-LGG a sequence: a FLAIR lesion is bright, a T1 one dark). Returns ``(kept, drawn)``: which recipients
    found a donor (bool, the recipients' order) and the drawn donors of those that did."""
    kept = torch.zeros(len(recipient_groups), dtype=torch.bool)
    drawn = torch.empty(len(recipient_groups), dtype=donors.dtype)
    for group in recipient_groups.unique().tolist():
        rows = torch.nonzero(recipient_groups == group).flatten()
        pool = donors[donor_groups == group]
        if len(pool):
            kept[rows] = True
            drawn[rows] = pool[torch.randint(len(pool), (len(rows),), generator=generator)]
    return kept, drawn[kept]


def paste_lesions(
    images: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    recipients: torch.Tensor,
    donors: torch.Tensor,
    donor_masks: torch.Tensor,
    donor_labels: torch.Tensor,
):
    """Copy a tumour (its mask, softened) from a donor slice into a recipient slice at the same place.

    ``images``/``masks`` are ``B x 1 x H x W`` in [0, 1]; ``recipients`` (bool ``B``) marks the slices that
    receive a lesion (tumour-free ones), one donor each (``donors``, ``donor_masks``: ``K x 1 x H x W``,
    ``donor_labels``: ``K``, in the recipients' order); they take the donor's mask and class. The donor's
    intensities are scaled so its head has the recipient's mean brightness. Returns new
    ``(images, masks, labels)``. This breaks "the collection gives the class away": a slice of a
    tumour-free collection now carries a tumour."""
    index = torch.nonzero(recipients).flatten()
    if len(index) != len(donors):
        raise ValueError(f"{len(index)} recipients for {len(donors)} donors")
    if len(index) == 0:
        return images, masks, labels
    soft = F.avg_pool2d(F.max_pool2d(donor_masks, 5, stride=1, padding=2), 5, stride=1, padding=2)
    target = images[index]

    def head_mean(x):
        region = head_region(x).to(x.dtype)
        return (x * region).sum(dim=(1, 2, 3), keepdim=True) / region.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1)

    donors = (donors * head_mean(target) / head_mean(donors).clamp_min(1e-3)).clamp(0, 1)
    images, masks, labels = images.clone(), masks.clone(), labels.clone()
    images[index] = target * (1 - soft) + donors * soft
    masks[index] = donor_masks
    labels[index] = donor_labels
    return images, masks, labels


def _random_blur(images: torch.Tensor, prob: float, generator) -> torch.Tensor:
    n, device = images.shape[0], images.device
    chosen = torch.rand(n, generator=generator, device=device) < prob
    if not chosen.any():
        return images
    sigma = 0.5 + 0.8 * torch.rand((), generator=generator, device=device).item()
    radius = 3
    x = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    blurred = images[chosen]
    blurred = F.conv2d(F.pad(blurred, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    out = images.clone()
    out[chosen] = blurred
    return out
