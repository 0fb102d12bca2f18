"""Several processes, one run: the rank's share of each global batch and the number format (torchrun, DDP)."""

from __future__ import annotations

import logging
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
    """This process's rank, the number of processes and its device, from torchrun's environment through timm's
    ``init_distributed_device_so`` (gloo on CPU, nccl on CUDA; one process without torchrun)."""
    import torch.distributed as dist
    from timm.utils.distributed import init_distributed_device_so

    if dist.is_available() and dist.is_initialized():  # a second trainer in the same process group
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        return Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=device)
    info = init_distributed_device_so("cuda" if torch.cuda.is_available() else "cpu")
    return Dist(rank=info["global_rank"], world=info["world_size"], device=torch.device(info["device"]))


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
