"""MixStyle (Zhou et al., "Domain generalization with MixStyle", ICLR 2021): during training, the per-channel mean and
standard deviation of an early stage's feature map (the statistics that carry an image's "style": its scanner,
contrast and texture, more than its content) are mixed with those of another image of the batch, so the network
sees new mixtures of the sources' looks and has to answer from the content.

Training only, and nothing learned: a forward hook on the model's first feature stages (timm's ``feature_info``)
that does nothing in eval mode, so releases, the EMA copy's evaluation and export are unchanged. ``--balance
sources`` draws the Kaggle and TCGA-LGG images into the same batches, so a mix is often across sources.
"""

from __future__ import annotations

import torch

EPS = 1e-6


class MixStyle:
    """A forward hook: with probability ``p`` per batch, each image's feature statistics become
    ``lam * its own + (1 - lam) * another image's``, ``lam ~ Beta(alpha, alpha)`` per image (the paper's p = 0.5,
    alpha = 0.1)."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1):
        if not 0.0 <= p <= 1.0 or alpha <= 0:
            raise ValueError(f"MixStyle needs 0 <= p <= 1 and alpha > 0, not p={p}, alpha={alpha}")
        self.p = p
        self.beta = torch.distributions.Beta(alpha, alpha)

    def __call__(self, module: torch.nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or len(output) < 2 or torch.rand(()).item() >= self.p:
            return None  # the stage's own output
        mean = output.mean(dim=(2, 3), keepdim=True).detach()
        std = (output.var(dim=(2, 3), keepdim=True) + EPS).sqrt().detach()
        normed = (output - mean) / std
        lam = self.beta.sample((len(output), 1, 1, 1)).to(output.device, output.dtype)
        other = torch.randperm(len(output), device=output.device)
        return normed * (lam * std + (1 - lam) * std[other]) + (lam * mean + (1 - lam) * mean[other])


def add_mixstyle(model: torch.nn.Module, p: float, alpha: float = 0.1, stages: int = 2) -> list:
    """Hook MixStyle after the first ``stages`` feature stages of a timm model; returns the hook handles."""
    info = getattr(model, "feature_info", None)
    if not info or len(info) < stages:
        raise ValueError(f"MixStyle needs a timm model with at least {stages} feature stages (feature_info)")
    hook = MixStyle(p, alpha)
    return [model.get_submodule(stage["module"]).register_forward_hook(hook) for stage in info[:stages]]
