"""Run by tests/test_steps.py under torchrun: one DDP optimiser step on a shared global batch."""

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from brainmri.training.distributed import rank_slice, setup_distributed
from brainmri.training.model import create_model
from brainmri.training.steps import train_step

folder = Path(sys.argv[1])
dist = setup_distributed()
torch.set_num_threads(1)
model = create_model("test_convnext", num_classes=4, image_size=32, drop_rate=0.0)
model.load_state_dict(load_file(folder / "start.safetensors"))
net = DistributedDataParallel(model.train())
batch = torch.load(folder / "batch.pt", weights_only=True)
share = rank_slice(len(batch["y"]), dist)
train_step(net, torch.optim.Adam(model.parameters(), lr=1e-3), batch["x"][share], batch["y"][share])
if dist.main:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "ddp.safetensors")
torch.distributed.destroy_process_group()
