"""One optimiser step, the schedule and the optimiser's weight decay, one process or several (DDP)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from brainmri.training.distributed import Dist, rank_slice
from brainmri.training.steps import make_scheduler, train_step
from helpers import TINY_ARCH, TINY_SIZE

ROOT = Path(__file__).resolve().parents[1]


def _earlier_schedule(step: int, total: int, warmup: int, schedule: str) -> float:
    """The hand-written schedule the project used before timm's (the factor of the peak rate)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return 1.0


@pytest.mark.parametrize(
    "total,warmup,schedule",
    [(6300, 240, "cosine"), (500, 30, "cosine"), (400, 0, "cosine"), (300, 20, "constant"), (300, 0, "constant")],
)
def test_timm_schedule_keeps_the_earlier_values(total, warmup, schedule):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=2e-3)
    scheduler = make_scheduler(optimizer, total, warmup, schedule)
    got = []
    for step in range(total):
        if scheduler is not None:
            scheduler.step_update(step)
        got.append(optimizer.param_groups[0]["lr"] / 2e-3)
    expected = [_earlier_schedule(step, total, warmup, schedule) for step in range(total)]
    np.testing.assert_allclose(got[:warmup], expected[:warmup], rtol=1e-9)  # the warm-up: the same values
    one_step = math.pi / (2 * max(1, total - warmup))  # the cosine's largest change in one step
    assert max(abs(a - b) for a, b in zip(got, expected)) <= one_step  # the cosine: one step later at most
    assert got[warmup - 1 if warmup else 0] == pytest.approx(1.0)
    assert (got[-1] < 0.01) if schedule == "cosine" else (got[-1] == pytest.approx(1.0))


def test_optimizer_decays_weights_only():
    from timm.optim import create_optimizer_v2

    from brainmri.training.model import create_model

    model = create_model(TINY_ARCH, num_classes=4)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=2e-3, weight_decay=0.05)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decayed) == (p.ndim > 1)
    assert rank_slice(8, Dist(rank=1, world=2)) == slice(4, 8)


@pytest.mark.slow  # trains, exports or serves
def test_ddp_step_matches_single_process(tmp_path):
    """torchrun with 2 gloo processes, each on half of a global batch, steps like one process."""
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=TINY_SIZE, drop_rate=0.0)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "start.safetensors")
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, TINY_SIZE, TINY_SIZE, generator=gen), torch.randint(0, 4, (8,), generator=gen)
    torch.save({"x": x, "y": y}, tmp_path / "batch.pt")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(ROOT / "scripts" / "testing" / "ddp_step.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_step(model.train(), opt, x, y)
    ddp = load_file(tmp_path / "ddp.safetensors")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp[name], value, atol=1e-5, rtol=0)
