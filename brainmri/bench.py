"""Measurements that print figures (never asserts): ``python -m brainmri.bench training ...``.

``training``: img/s of the whole training loop (cache → batched augmentation → step) against the
bare forward/backward/optimiser step on batches prepared in advance, same model, same batches.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def training_speed(data: str, arch: str, image_size: int, batch_size: int, steps: int, cache_dir=None,
                   threads: int | None = None) -> dict:
    from .training import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(TrainConfig(data=data, out=out, arch=arch, pretrained=False, image_size=image_size,
                                      batch_size=batch_size, recipe="scratch", epochs=2, cache_dir=cache_dir,
                                      threads=threads, steps_per_epoch=2))
        trainer.setup()
        trainer.train_one_epoch(0)  # warm-up: allocator, oneDNN kernels
        trainer.steps_per_epoch = steps
        loop = trainer.train_one_epoch(1)
        bare = trainer.bare_step_speed(steps + 1)
    return {"arch": arch, "image_size": image_size, "batch_size": batch_size, "steps": steps,
            "bf16": trainer.bf16, "loop_img_s": loop["train_img_s"], "bare_step_img_s": bare,
            "loop_vs_bare": loop["train_img_s"] / bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("training", help="training loop vs bare step, img/s")
    p.add_argument("--data", default="../shared/data/brain-tumor-mri")
    p.add_argument("--arch", default="convnext_tiny")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    start = time.time()
    result = training_speed(args.data, args.arch, args.image_size, args.batch_size, args.steps, args.cache_dir,
                            args.threads)
    result["wall_s"] = round(time.time() - start, 1)
    print(f"{result['arch']} @ {result['image_size']} px, batch {result['batch_size']}, {result['steps']} steps: "
          f"loop {result['loop_img_s']:.2f} img/s, bare step {result['bare_step_img_s']:.2f} img/s "
          f"({100 * result['loop_vs_bare']:.0f} %)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
