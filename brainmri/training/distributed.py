"""Several processes, one run: the rank's share of each global batch and the number format (torchrun, DDP)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    if world <= 1:
        return Dist(device=device)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def rank_slice(global_batch: int, dist: Dist) -> slice:
    """This rank's contiguous share of a global batch (equal shares; the batch must divide)."""
    if global_batch % dist.world:
        raise ValueError(f"global batch {global_batch} does not divide over {dist.world} processes")
    share = global_batch // dist.world
    return slice(dist.rank * share, (dist.rank + 1) * share)


# ----------------------------------------------------------------------------- steps


def use_bf16(setting: str, device: torch.device) -> bool:
    if setting == "off":
        return False
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if setting == "on" and not supported:
        log.warning("bf16 asked for but not supported on %s; using fp32", device)
    return supported
