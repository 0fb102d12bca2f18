"""Create the timm classifier, with the preprocessing it will be saved with."""

from __future__ import annotations

from typing import Any

import timm
import torch

from brainmri.training.config import DROP_RATE as DEFAULT_DROP_RATE

# The research report's head: timm's ConvNeXt head is LayerNorm2d → flatten →
# Dropout(drop_rate) → Linear(num_features → num_classes); we only set drop_rate.
DEFAULT_ARCH = "convnext_tiny"


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights were asked for but the Hugging Face Hub could not be reached."""


def create_model(
    arch: str = DEFAULT_ARCH,
    num_classes: int = 4,
    *,
    pretrained: bool = False,
    drop_rate: float = DEFAULT_DROP_RATE,
    image_size: int | None = None,
    crop_pct: float = 1.0,
    **model_args: Any,
) -> torch.nn.Module:
    """A timm model with a fresh ``num_classes`` head and an eval ``pretrained_cfg`` for our data.

    ``crop_pct`` defaults to 1.0: slices are padded to a square first, so a
    centre crop would cut the edge of the skull off, not a background margin.
    """
    if pretrained:
        _check_hub_reachable(arch)
    try:
        model = timm.create_model(
            arch, pretrained=pretrained, num_classes=num_classes, drop_rate=drop_rate, **model_args
        )
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"{arch!r} is not a timm architecture (see timm.list_models())") from None
        raise
    except Exception as err:  # network errors come in many types (requests, httpx, hub)
        if pretrained and _looks_like_network_error(err):
            raise _unavailable(arch, type(err).__name__) from None
        raise
    cfg = dict(model.pretrained_cfg)
    if image_size is not None:
        cfg["input_size"] = (cfg.get("input_size", (3, 224, 224))[0], image_size, image_size)
    cfg["crop_pct"] = crop_pct
    for key in ("test_input_size", "test_crop_pct", "url", "hf_hub_id", "tag", "pool_size"):
        cfg.pop(key, None)
    model.pretrained_cfg = cfg
    return model


def _unavailable(arch: str, why: str) -> PretrainedUnavailable:
    return PretrainedUnavailable(
        f"cannot download ImageNet weights for {arch} from the Hugging Face Hub ({why}); "
        f"use --no-pretrained to train from scratch, or --init DIR to start from a local release folder"
    )


def _check_hub_reachable(arch: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not after the hub client's minute of retries, when the Hub is unreachable."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE"):
        return  # offline mode: the hub client reads its own cache and says what is missing
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:
        raise _unavailable(arch, f"{host} unreachable: {err}") from None


def _looks_like_network_error(err: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(err)}
    text = " ".join(str(e) for e in _chain(err)).lower()
    network_names = {
        "ConnectionError",
        "ConnectError",
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
        "URLError",
        "gaierror",
        "MaxRetryError",
    }
    return bool(names & network_names) or any(w in text for w in ("connection", "resolve", "offline", "network"))


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def head_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters of the classifier head (phase 1 of the report's recipe trains only these)."""
    head = model.get_classifier()
    ids = {id(p) for p in head.parameters()}
    # timm's ConvNeXt keeps the head's LayerNorm beside the fc; it belongs to the head.
    norm = getattr(getattr(model, "head", None), "norm", None)
    if norm is not None:
        ids |= {id(p) for p in norm.parameters()}
    return [p for p in model.parameters() if id(p) in ids]


def target_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The layer Grad-CAM looks at: the last feature stage (before the head)."""
    if hasattr(model, "stages"):
        return model.stages[-1]
    if hasattr(model, "layer4"):
        return model.layer4
    children = [m for m in model.children() if list(m.parameters())]
    return children[-2]
