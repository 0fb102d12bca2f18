"""Training speed: the whole loop against the bare forward/backward/step, img/s (printed, never asserted;
training runs themselves no longer measure it)."""

from __future__ import annotations

import copy
import tempfile
import time

import torch

from brainmri.training.steps import train_step


def bare_step_speed(trainer, steps: int = 6) -> float:
    """img/s of forward/backward/step alone, on batches made in advance from the same data."""

    model = copy.deepcopy(trainer.train_module).train()
    net = model
    if trainer.dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [trainer.device.index] if trainer.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    batches = [b for _, b in zip(range(steps), trainer._batches(0))]

    def step(x, y, masks=None, supervised=None):
        train_step(
            net,
            opt,
            x,
            y,
            bf16=trainer.bf16,
            masks=masks,
            supervised=supervised,
            seg_weight=trainer.cfg.seg_weight,
            cam_weight=trainer.cfg.cam_weight,
            cam_target=trainer.cfg.cam_target,
        )

    step(*batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches[1:]:
        step(*batch)
    seconds = time.perf_counter() - start
    return (len(batches) - 1) * trainer.cfg.batch_size / seconds


def training_speed(
    data: str, arch: str, image_size: int, batch_size: int, steps: int, cache_dir=None, threads: int | None = None
) -> dict:
    from brainmri.training.trainer import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            TrainConfig(
                data=data,
                out=out,
                arch=arch,
                pretrained=False,
                image_size=image_size,
                batch_size=batch_size,
                recipe="scratch",
                epochs=2,
                cache_dir=cache_dir,
                threads=threads,
                steps_per_epoch=2,
            )
        )
        trainer.setup()
        trainer.train_one_epoch(0)  # warm-up: allocator, oneDNN kernels
        trainer.steps_per_epoch = steps
        loop = trainer.train_one_epoch(1)
        bare = bare_step_speed(trainer, steps + 1)
    return {
        "arch": arch,
        "image_size": image_size,
        "batch_size": batch_size,
        "steps": steps,
        "bf16": trainer.bf16,
        "loop_img_s": loop["train_img_s"],
        "bare_step_img_s": bare,
        "loop_vs_bare": loop["train_img_s"] / bare,
    }
