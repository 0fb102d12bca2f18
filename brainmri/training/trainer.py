"""Training: the report's two-phase recipe and a from-scratch recipe, resumable, DDP-ready.

The loop reads batches from the in-memory uint8 cache (:mod:`brainmri.data.folders`),
augments the whole batch at once (:mod:`brainmri.data.augment`) and steps the model
in channels_last (bf16 autocast where the CPU or GPU supports it). After every
epoch it validates on the held-out part of Training, writes ``last.pt`` (resume
state, tensors only, written then renamed) and keeps the best release folder by
validation loss. Testing is never read here.

Under ``torchrun --nproc_per_node N`` each process takes 1/N of every global
batch; gradients are averaged by DDP, so the global batch and schedule are
those of one process, and only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from brainmri.data.augment import AugmentConfig
from brainmri.evaluation import plots
from brainmri.inference.release import load_release, save_release
from brainmri.training.calibration import calibrate_release
from brainmri.training.config import TrainConfig
from brainmri.training.distributed import Dist, setup_distributed, use_bf16
from brainmri.training.model import create_model, head_parameters
from brainmri.training.run_data import RunData
from brainmri.training.steps import make_scheduler, predict_logits, train_step

log = logging.getLogger(__name__)


class Trainer(RunData):
    """Owns one run folder: data, model, optimiser, history; ``run()`` trains to the end."""

    def __init__(self, cfg: TrainConfig, dist: Dist | None = None):
        self.cfg = cfg.resolved()
        self.dist = dist or setup_distributed()
        self.out = Path(self.cfg.out)
        self.device = self.dist.device
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.bf16 = use_bf16(self.cfg.bf16, self.device)
        self.aug = replace(
            AugmentConfig.named(self.cfg.augment),
            invert_prob=self.cfg.invert_prob,
            curve_prob=self.cfg.curve_prob,
            marker_prob=self.cfg.marker_prob,
        )
        if self.cfg.gamma is not None:
            self.aug = replace(self.aug, gamma=tuple(self.cfg.gamma))
        self.holdout = None
        self.history: list[dict[str, Any]] = []
        self.best_loss = math.inf
        self.best_meets_floor = False  # whether the saved epoch kept --clean-floor (without one, every epoch does)
        self.reference_acc: float | None = None  # the --init model's clean validation accuracy (--clean-floor)
        self.bad_epochs = 0
        self.start_epoch = 0
        self.seconds = 0.0  # in training steps
        self._wall_before, self._started = 0.0, time.monotonic()  # wall-clock of earlier processes (resume), this one

    # -- setup
    def _build_model(self):
        c = self.cfg
        if c.init:
            model, release = load_release(c.init)
            config = release.config
            if c.init_image_size:  # the released network moved onto another input size (its preprocessing follows)
                channels = config["pretrained_cfg"]["input_size"][0]
                size = (channels, c.init_image_size, c.init_image_size)
                config = {**config, "pretrained_cfg": {**config["pretrained_cfg"], "input_size": list(size)}}
                model.pretrained_cfg = {**model.pretrained_cfg, "input_size": size}
            self.init_config = config
            self.label_names = list(config["label_names"])
            # The release decides the architecture and input size: record those, not the CLI defaults.
            self.cfg = replace(
                c, arch=config["architecture"], image_size=int(config["pretrained_cfg"]["input_size"][-1])
            )
            return model
        args = dict(c.model_args)
        if c.ls_init_value is not None:
            args["ls_init_value"] = c.ls_init_value
        if c.drop_path_rate:
            args["drop_path_rate"] = c.drop_path_rate
        if c.output_stride:
            args["output_stride"] = c.output_stride
        return create_model(
            c.arch,
            num_classes=len(self.classes),
            pretrained=c.pretrained,
            drop_rate=c.drop_rate,
            image_size=c.image_size,
            **args,
        )

    def _make_optimizer(self, head_only: bool):
        """timm's optimizer factory (weight decay on weights, not on norms, biases and other 1-D parameters)
        and, for the full phase, timm's per-step scheduler (:func:`make_scheduler`)."""
        from timm.optim import create_optimizer_v2

        c = self.cfg
        lr = c.head_lr if head_only else c.lr
        optimizer = create_optimizer_v2(
            head_parameters(self.model) if head_only else self.train_module,
            opt=c.optimizer,
            lr=lr,
            weight_decay=c.weight_decay,
        )
        self.scheduler = (
            None
            if head_only
            else make_scheduler(
                optimizer,
                (c.epochs - self.head_epochs) * self.steps_per_epoch,
                c.warmup_epochs * self.steps_per_epoch,
                c.schedule,
            )
        )
        return optimizer

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "tumour_map": (
                self.train_module.tumour_map.state_dict()
                if self.train_module is not self.model and self.train_module.tumour_map is not None
                else {}
            ),
            "ema": self.ema.module.state_dict() if self.ema else {},
            "epoch": epoch,
            "best_loss": self.best_loss,
            "bad_epochs": self.bad_epochs,
            "seconds": self.seconds,
            "wall_seconds": self.wall_seconds,
            "history": json.dumps(self.history),
            "group_weights": self.robust.weights if self.robust is not None else torch.zeros(0),
        }

    def _save_state(self, epoch: int) -> None:
        tmp = self.out / f".last.pt.{os.getpid()}"
        torch.save(self._state(epoch), tmp)
        os.replace(tmp, self.out / "last.pt")

    def _load_state(self) -> None:
        state = torch.load(self.out / "last.pt", map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        if self.train_module is not self.model and self.train_module.tumour_map is not None and state.get("tumour_map"):
            self.train_module.tumour_map.load_state_dict(state["tumour_map"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.start_epoch >= self.head_epochs and self.head_epochs:
            self.optimizer = self._make_optimizer(head_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema and state["ema"]:
            self.ema.module.load_state_dict(state["ema"])
        self.best_loss, self.bad_epochs = float(state["best_loss"]), int(state["bad_epochs"])
        self.seconds = float(state["seconds"])
        self._wall_before = float(state.get("wall_seconds", 0.0))
        self.history = json.loads(state["history"])
        if self.robust is not None and len(state.get("group_weights", ())):
            self.robust.weights = state["group_weights"].cpu()
        saved = [row for row in self.history if row.get("best")]  # the saved epoch kept the floor (always, without one)
        self.best_meets_floor = bool(saved) and saved[-1].get("meets_floor", True)
        log.info("resumed %s at epoch %d", self.out, self.start_epoch)

    # -- epochs
    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess.normalize(images.to(self.device))
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        c = self.cfg
        self.net.train()
        torch.manual_seed(c.seed * 7919 + epoch)  # dropout / drop-path
        in_head_phase = epoch < self.head_epochs
        total_loss = correct = seen = 0
        start = time.perf_counter()
        bar = tqdm(
            self._batches(epoch, with_cells=self.robust is not None),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{c.epochs}",
            disable=None if self.dist.main else True,
            leave=False,
        )
        for step, (x, y, *rest) in enumerate(bar):
            cells, mask_batch = (rest[0], rest[1:]) if self.robust is not None else (None, rest)
            if not in_head_phase:
                global_step = (epoch - self.head_epochs) * self.steps_per_epoch + step
                if self.scheduler is not None:
                    self.scheduler.step_update(global_step)
            masks, supervised = mask_batch or (None, None)
            loss, hits = train_step(
                self.net,
                self.optimizer,
                x,
                y,
                label_smoothing=c.label_smoothing,
                bf16=self.bf16,
                masks=masks,
                supervised=supervised,
                seg_weight=c.seg_weight,
                cam_weight=c.cam_weight,
                cam_target=c.cam_target,
                robust=self.robust,
                groups=cells,
            )
            if self.ema is not None and not in_head_phase:
                self.ema.update(self.model, step=global_step)
            total_loss += loss * len(y)
            correct += hits
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - start
        row = {
            "train_loss": total_loss / seen,
            "train_acc": correct / seen,
            "train_img_s": seen * self.dist.world / seconds,
            "train_seconds": seconds,
        }
        if self.robust is not None:  # each (source, class) cell's weight at the epoch's end
            row["group_weights"] = " ".join(f"{w:.4f}" for w in self.robust.weights.tolist())
        return row

    def eval_model(self):
        return (
            self.ema.module
            if self.ema is not None and self.history and self.history[-1]["epoch"] >= self.head_epochs
            else self.model
        )

    @cached_property
    def _val_inverted(self) -> np.ndarray:
        """The validation images with their contrast inverted (computed once per run)."""
        from brainmri.inference.sequence_check import invert_inside_head

        return np.stack([invert_inside_head(image) for image in self.val_set.images])

    def validate(self, model=None) -> dict[str, float]:
        """Loss and accuracy on the validation split. A run trained with contrast inversion is also measured
        on the inverted validation images, and its best epoch is chosen on the mean of both losses
        (``select_loss``): the clean loss alone cannot see what the inversion is there to teach."""
        model = model or self.eval_model()
        labels = torch.from_numpy(self.val_set.labels)

        def measure(images) -> tuple[float, torch.Tensor]:
            logits = predict_logits(
                model, images, self.preprocess, device=self.device, bf16=self.bf16, channels_last=self.cfg.channels_last
            )
            return float(F.cross_entropy(logits, labels)), logits.argmax(1) == labels

        loss, right = measure(self.val_set.images)
        row = {"val_loss": loss, "val_acc": float(right.float().mean()), "select_loss": loss}
        if self.cfg.lgg:  # each source apart (the LGG slices come last): a mixed figure hides a fall on either
            kaggle = len(self.val_set) - len(self.lgg_val)
            row.update(
                val_acc_kaggle=float(right[:kaggle].float().mean()), val_acc_lgg=float(right[kaggle:].float().mean())
            )
        if self.cfg.invert_prob > 0:
            inverted_loss, inverted_right = measure(self._val_inverted)
            inverted_accuracy = float(inverted_right.float().mean())
            row.update(
                val_loss_inverted=inverted_loss,
                val_acc_inverted=inverted_accuracy,
                select_loss=(loss + inverted_loss) / 2,
            )
        return row

    def _improves(self, row: dict[str, Any]) -> bool:
        """Whether this epoch replaces the saved one: lower selection loss, except that with ``--clean-floor`` an
        epoch that kept the floor always beats one that did not (the floor is recorded in ``row``)."""
        meets = True
        if self.reference_acc is not None:
            meets = row["val_acc"] >= self.reference_acc - self.cfg.clean_floor - 1e-9
            row["meets_floor"] = meets
        if meets != self.best_meets_floor:
            return meets
        return row["select_loss"] < self.best_loss

    def run(self) -> dict[str, Any]:
        c = self.cfg
        self.setup()
        if self.dist.main and self.start_epoch == 0:
            sample = next(self._batches(0))[0][:32]
            plots.augmented_batch(sample, self.preprocess, self.out / "augmented_batch.png")
        for epoch in range(self.start_epoch, c.epochs):
            if epoch == self.head_epochs and self.head_epochs and epoch > 0:
                self.optimizer = self._make_optimizer(head_only=False)
            stats = self.train_one_epoch(epoch)
            self.seconds += stats["train_seconds"]
            row = {
                "epoch": epoch,
                "phase": "head" if epoch < self.head_epochs else "full",
                "lr": self.optimizer.param_groups[0]["lr"],
                **stats,
            }
            self.history.append(row)
            row.update(self.validate())
            improved = self._improves(row)
            if improved:
                self.best_loss, self.best_meets_floor, self.bad_epochs = (
                    row["select_loss"],
                    row.get("meets_floor", True),
                    0,
                )
                if self.dist.main:
                    self._save_release(self.eval_model(), epoch, row)
            elif epoch >= self.head_epochs:
                self.bad_epochs += 1
            row["best"] = improved
            if self.dist.main:
                self._save_state(epoch)
                self._write_history()
                log.info(
                    "epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                )
            if c.patience and self.bad_epochs >= c.patience:
                log.info("early stop: validation loss has not improved for %d epochs", c.patience)
                break
        summary = self.finish()
        return summary

    def _save_release(self, model, epoch: int, row: dict[str, Any]) -> None:
        c = self.cfg
        extra = {
            "brainmri": {
                "recipe": c.recipe,
                "epoch": epoch + 1,
                "val_loss": row["val_loss"],
                "val_acc": row["val_acc"],
                "seed": c.seed,
                "image_size": c.image_size,
                "train_images": len(self.train_set),
                "val_images": len(self.val_set),
                "data": Path(c.data).name,
                "pretrained": bool(c.pretrained and not c.init),
                "drop_rate": c.drop_rate,  # the head's dropout in training (MC dropout reuses it)
                **{k: row[k] for k in ("val_acc_kaggle", "val_acc_lgg") if k in row},
            }
        }  # each source
        save_release(
            model,
            self.out / "release",
            self.label_names,
            extra=extra,
            half=c.half_weights,
            preprocessing=self.preprocess.release_steps(),
        )

    def _write_history(self) -> None:
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        with open(self.out / "epochs.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        plots.training_curves(self.history, self.out / "curves.png")

    def finish(self) -> dict[str, Any]:
        """Calibrate the best release on validation and write summary.json (with the loop's median img/s)."""
        summary: dict[str, Any] = {
            "epochs_run": len(self.history),
            "train_seconds": round(self.seconds, 1),
            "best_val_loss": self.best_loss,
            "skipped_files": self.skipped,
        }
        if self.reference_acc is not None:
            summary.update(floor_reference_val_acc=self.reference_acc, best_meets_floor=self.best_meets_floor)
        if self.dist.main and (self.out / "release").is_dir():
            summary.update(
                calibrate_release(
                    self.out / "release",
                    self.train_set,
                    self.val_set,
                    extra_meta={"train_seconds": round(self.seconds, 1)},
                    half=self.cfg.half_weights,
                    ok_target=self.cfg.ok_target,
                )
            )
        loop = [r["train_img_s"] for r in self.history if r["phase"] == "full"] or [
            r["train_img_s"] for r in self.history
        ]
        summary["loop_img_s"] = float(np.median(loop)) if loop else None
        summary["wall_seconds"] = round(self.wall_seconds, 1)
        if self.dist.main:
            if (self.out / "summary.json").is_file():  # a re-run of finish() keeps earlier figures
                summary = {**json.loads((self.out / "summary.json").read_text()), **summary}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            print(f"training loop {summary['loop_img_s']:.1f} img/s (benchmarks: python -m benchmarks.bench training)")
        return summary

    @property
    def wall_seconds(self) -> float:
        """Wall-clock time this run has spent in processes (setup, epochs, validation, calibration; a resumed
        run adds its earlier processes up to their last saved epoch)."""
        return self._wall_before + time.monotonic() - self._started
