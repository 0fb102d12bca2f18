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
from dataclasses import asdict, dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from brainmri.data.augment import AugmentConfig, augment_batch, paste_lesions
from brainmri.data.dedup import duplicate_groups, find_pairs
from brainmri.data.folders import SPLIT_FILE, check_classes, list_classes, load_folder, split_train_val
from brainmri.evaluation import plots
from brainmri.inference.preprocess import GammaFraming, Preprocess
from brainmri.inference.release import load_release, save_release
from brainmri.training.calibration import calibrate_release
from brainmri.training.config import TrainConfig
from brainmri.training.model import create_model, head_parameters

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- distributed


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


class WithTumourMap(torch.nn.Module):
    """The classifier plus what training may ask of its last feature map (training only; not released):

    - a 1x1-conv *tumour map* (``seg``): the feature map must say where the tumour is;
    - the *Grad-CAM of the true class* (``cam``), computed differentiably (the gradient of the class score
      with respect to the feature map, ``create_graph=True``, through the small head only), so that a loss
      can ask the heatmap itself to lie on the tumour ("right for the right reasons", Ross et al., 2017).
    """

    def __init__(self, model: torch.nn.Module, seg: bool = True, cam: bool = False):
        super().__init__()
        self.model = model
        self.tumour_map = torch.nn.Conv2d(model.num_features, 1, kernel_size=1) if seg else None
        self.cam = cam

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        features = self.model.forward_features(x)
        logits = self.model.forward_head(features)
        tumour_map = self.tumour_map(features) if self.tumour_map is not None else None
        cam = None
        if self.cam and targets is not None and torch.is_grad_enabled():
            score = logits.gather(1, targets[:, None]).sum()
            gradient = torch.autograd.grad(score, features, create_graph=True)[0]
            cam = F.relu((gradient.mean(dim=(2, 3), keepdim=True) * features).sum(1))  # B x h x w
        return logits, tumour_map, cam


def tumour_map_loss(tumour_map: torch.Tensor, masks: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the tumour map against each cell's tumour fraction, on supervised images."""
    if not bool(supervised.any()):
        return tumour_map.sum() * 0.0
    target = F.adaptive_avg_pool2d(masks.float(), tumour_map.shape[-2:])
    return F.binary_cross_entropy_with_logits(tumour_map.float()[supervised], target[supervised])


@lru_cache(maxsize=16)
def _peak_pixels(cells: int, pixels: int) -> torch.Tensor:
    """Where a heatmap of ``cells`` scaled bilinearly to ``pixels`` (half-pixel centres, as pytorch-grad-cam's
    cv2.resize) peaks when one cell is hot: the first pixel of the largest weight, per cell (its centre
    inside the map, the outer edge for a border cell)."""
    one_hot = torch.eye(cells)[:, None, :]  # cells x 1 x cells
    return F.interpolate(one_hot, size=pixels, mode="linear", align_corners=False)[:, 0].argmax(1)


def cam_target_cells(
    masks: torch.Tensor, grid: tuple[int, int], target: str = "widened", widen_px: int = 2
) -> torch.Tensor:
    """Which cells of a ``grid`` heatmap count as "on the tumour" for ``masks`` (``B x 1 x H x W``) → ``B x h x w``.

    ``"widened"``: cells touching the mask, widened by one cell. ``"centres"``: cells whose centre pixel lies in
    the mask widened by ``widen_px`` pixels, the localisation yardstick's own rule (a heatmap scaled to the input
    peaks on a cell centre); where no centre does (a tumour smaller than a cell), the cells touching the mask."""
    touching = F.adaptive_max_pool2d((masks > 0).float(), grid)
    if target == "widened":
        return F.max_pool2d(touching, 3, stride=1, padding=1)[:, 0]
    if target != "centres":
        raise ValueError(f"unknown Grad-CAM target {target!r}; choose widened or centres")
    height, width = masks.shape[-2:]
    widened = F.max_pool2d((masks > 0.5).float(), 2 * widen_px + 1, stride=1, padding=widen_px)
    rows, cols = (_peak_pixels(cells, pixels).to(masks.device) for cells, pixels in zip(grid, (height, width)))
    centres = widened[:, :, rows][:, :, :, cols]
    none_hit = centres.flatten(1).amax(1) == 0
    return torch.where(none_hit.view(-1, 1, 1, 1), touching, centres)[:, 0]


def cam_outside_loss(cam: torch.Tensor, masks: torch.Tensor, target: str = "widened") -> torch.Tensor:
    """The share of the true class's Grad-CAM outside the tumour cells (:func:`cam_target_cells`), on images
    with a tumour mask; 0 for a heatmap all on the tumour."""
    cells = cam_target_cells(masks, tuple(cam.shape[-2:]), target)
    has_tumour = cells.flatten(1).amax(1) > 0
    if not bool(has_tumour.any()):
        return cam.sum() * 0.0
    cam, cells = cam[has_tumour].float(), cells[has_tumour]
    share = (cam * cells).flatten(1).sum(1) / cam.flatten(1).sum(1).clamp_min(1e-6)
    return (1 - share).mean()


def train_step(
    model,
    optimizer,
    inputs,
    targets,
    *,
    label_smoothing: float = 0.0,
    bf16: bool = False,
    loss_scale: float = 1.0,
    masks: torch.Tensor | None = None,
    supervised: torch.Tensor | None = None,
    seg_weight: float = 0.0,
    cam_weight: float = 0.0,
    cam_target: str = "widened",
) -> tuple[float, int]:
    """One forward/backward/step; returns (mean loss on this batch, correct predictions).

    A :class:`WithTumourMap` model adds ``seg_weight`` times its tumour-map loss against ``masks`` on the
    ``supervised`` images, and ``cam_weight`` times the share of the true class's Grad-CAM outside the tumour."""
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        inner = getattr(model, "module", model)
        output = model(inputs, targets) if isinstance(inner, WithTumourMap) else model(inputs)
    logits, tumour_map, cam = output if isinstance(output, tuple) else (output, None, None)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    if tumour_map is not None and masks is not None and seg_weight:
        loss = loss + seg_weight * tumour_map_loss(tumour_map, masks, supervised)
    if cam is not None and masks is not None and cam_weight:
        loss = loss + cam_weight * cam_outside_loss(cam, masks, cam_target)
    optimizer.zero_grad(set_to_none=True)
    (loss * loss_scale).backward()
    optimizer.step()
    return float(loss.detach()), int((logits.detach().argmax(1) == targets).sum())


@torch.inference_mode()
def predict_logits(
    model,
    images: np.ndarray,
    preprocess: Preprocess,
    *,
    batch_size: int = 64,
    device: torch.device = torch.device("cpu"),
    bf16: bool = False,
    channels_last: bool = True,
) -> torch.Tensor:
    """Logits for fitted uint8 images (N x S x S), in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).unsqueeze(1).to(device)
        x = preprocess.normalize(chunk)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def make_scheduler(optimizer, total: int, warmup: int, schedule: str):
    """timm's per-step scheduler for ``total`` steps: a linear warm-up over ``warmup`` steps from
    ``lr / warmup`` to ``lr`` (reached at step ``warmup - 1``), then cosine to 0 (``cosine``) or constant.
    The project's earlier hand-written schedule, ``(s + 1) / warmup`` then ``cos`` over the rest, gives the
    same warm-up and a cosine one step later (a difference under 0.1 % of the peak rate; tested)."""
    from timm.scheduler import CosineLRScheduler, StepLRScheduler

    lr = optimizer.param_groups[0]["lr"]
    common = dict(
        warmup_t=max(0, warmup - 1), warmup_lr_init=lr / warmup if warmup else lr, warmup_prefix=True, t_in_epochs=False
    )
    if schedule == "cosine":
        return CosineLRScheduler(
            optimizer, t_initial=max(1, total - warmup + 1 if warmup else total), lr_min=0.0, **common
        )
    if warmup:
        return StepLRScheduler(optimizer, decay_t=10**9, decay_rate=1.0, **common)
    return None


# ----------------------------------------------------------------------------- the run


class Trainer:
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
            AugmentConfig.named(self.cfg.augment), invert_prob=self.cfg.invert_prob, curve_prob=self.cfg.curve_prob
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
            self.init_config = config = release.config
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

    def setup(self) -> None:
        c = self.cfg
        root = Path(c.data)
        train_root = root / "Training" if (root / "Training").is_dir() else root
        self.classes = list_classes(train_root)
        self.label_names = self.classes
        torch.manual_seed(c.seed)
        self.model = self._build_model()
        c = self.cfg  # with --init, the release's architecture and input size
        check_classes(self.classes, self.label_names, allow_subset=False)
        self.preprocess = (
            Preprocess.from_release_config(self.init_config)
            if c.init
            else Preprocess.from_model(self.model, content_crop=c.content_crop)
        )
        if c.crop is not None:  # e.g. a stage that moves a released model onto the head-region crop
            self.preprocess = replace(self.preprocess, crop=c.crop)
        full = load_folder(
            train_root, self.preprocess, cache_dir=c.cache_dir, classes=self.classes, progress=self.dist.main
        )
        self.skipped = full.skipped
        if c.holdout:
            full = self._hold_out(root, full)
        groups = duplicate_groups(len(full), find_pairs(full.phash, full.images, full.sha256))
        train_index, val_index = split_train_val(
            full, groups, c.val_fraction, c.seed if c.split_seed is None else c.split_seed
        )
        self.train_set, self.val_set = full.subset(train_index), full.subset(val_index)
        self.train_images = torch.from_numpy(np.ascontiguousarray(self.train_set.images))
        self.train_labels = torch.from_numpy(self.train_set.labels)
        self.train_masks = self.val_masks = None
        if c.masks:
            from brainmri.data.masks import load_masks

            mask_set = load_masks(full, c.masks, self.preprocess, cache_dir=c.cache_dir)
            self.val_masks = mask_set.subset(val_index)
            train_masks = mask_set.subset(train_index)
            self.train_masks = torch.from_numpy(train_masks.masks)
            self.train_supervised = torch.from_numpy(train_masks.supervised(self.train_set.labels, self.classes))
            self.donors = torch.from_numpy(np.flatnonzero(train_masks.annotated))
            log.info(
                "masks: %d of %d training images annotated, %d supervised",
                len(self.donors),
                len(self.train_set),
                int(self.train_supervised.sum()),
            )
            if c.paste_prob and not len(self.donors):
                log.warning("--paste-prob: no training image has a tumour mask, so no lesion is pasted")
        self.framed_images = self.framed_masks = None
        if c.framing_prob:
            self._load_framings(train_root, full, train_index)
        self.train_source = torch.zeros(len(self.train_set), dtype=torch.int64)  # 0: the Kaggle folder, 1: TCGA-LGG
        if c.lgg:
            self._add_lgg()

        self.model.to(self.device)
        self.train_module = (
            WithTumourMap(self.model, seg=bool(c.seg_weight), cam=bool(c.cam_weight)).to(self.device)
            if c.seg_weight or c.cam_weight
            else self.model
        )
        if c.channels_last:
            self.train_module.to(memory_format=torch.channels_last)
        self.ema = None
        if c.ema_decay:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=c.ema_decay, device=self.device)
        self.net = self.train_module
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.train_module, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

        self.steps_per_epoch = len(self.train_set) // c.batch_size
        if c.steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, c.steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train_set)} training images are fewer than one batch of {c.batch_size}")
        self.head_epochs = min(c.head_epochs, c.epochs)
        self.optimizer = self._make_optimizer(head_only=self.head_epochs > 0)
        if c.clean_floor is not None:  # measured on the starting weights, also when resuming
            self.reference_acc = self.validate(self.model)["val_acc"]
            log.info(
                "clean floor: the starting model's validation accuracy %.4f, minus %.4f",
                self.reference_acc,
                c.clean_floor,
            )
        if c.resume and (self.out / "last.pt").is_file():
            self._load_state()
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "args.json").write_text(json.dumps(asdict(c), indent=2))
            self._write_split()

    def _load_framings(self, train_root: Path, full, train_index: np.ndarray) -> None:
        """``--framing-prob``: the training slices framed as after a gamma change at each end of the gamma range
        (``V x N x H x W`` uint8, masks likewise; decoded once, then read from the cache)."""
        c = self.cfg
        if self.aug.gamma[0] == self.aug.gamma[1]:
            raise ValueError("--framing-prob needs a gamma range (--gamma LOW HIGH, or the scratch recipe's own)")
        images, masks = [], []
        for box_gamma in self.aug.gamma:
            framing = GammaFraming.of(self.preprocess, box_gamma)
            framed = load_folder(
                train_root, framing, cache_dir=c.cache_dir, classes=self.classes, progress=self.dist.main
            )
            position = {path: row for row, path in enumerate(framed.paths)}
            aligned = framed.subset(np.array([position[path] for path in full.paths], dtype=np.int64))
            images.append(np.ascontiguousarray(aligned.images[train_index]))
            if c.masks:
                from brainmri.data.masks import load_masks

                masks.append(load_masks(aligned, c.masks, framing, cache_dir=c.cache_dir).subset(train_index).masks)
        self.framed_images = torch.from_numpy(np.stack(images))
        self.framed_masks = torch.from_numpy(np.stack(masks)) if masks else None
        log.info(
            "framing: %d copies of %d training slices, cropped as after gamma %s",
            len(images),
            len(train_index),
            " and ".join(f"{g:g}" for g in self.aug.gamma),
        )

    def _add_lgg(self) -> None:
        """``--lgg``: TCGA-LGG's labelled slices of the training institutions, split by patient, appended to the
        training and validation splits (with their masks and framed copies when the run uses them)."""
        from brainmri.data.folders import join
        from brainmri.data.lgg import COLLECTION, load_lgg, load_lgg_masks, split_patients, training_sites
        from brainmri.data.masks import MaskSet

        c = self.cfg
        sites = training_sites(c.lgg_holdout)
        lgg = load_lgg(
            c.lgg, self.preprocess, self.classes, sites=sites, cache_dir=c.cache_dir, progress=self.dist.main
        )
        train_index, val_index = split_patients(lgg, c.val_fraction, c.seed if c.split_seed is None else c.split_seed)
        train, val = lgg.subset(train_index), lgg.subset(val_index)
        self.lgg_val = val
        first_new = len(self.train_set)
        self.train_set = join([self.train_set, train.images], ["", COLLECTION], self.train_set.root)
        self.val_set = join([self.val_set, val.images], ["", COLLECTION], self.val_set.root)
        self.train_images = torch.from_numpy(np.ascontiguousarray(self.train_set.images))
        self.train_labels = torch.from_numpy(self.train_set.labels)
        self.train_source = torch.cat([self.train_source, torch.ones(len(train), dtype=torch.int64)])
        if c.masks:  # every labelled TCGA-LGG slice has its reader's mask (empty on "notumor" slices)
            masks = load_lgg_masks(lgg, self.preprocess, cache_dir=c.cache_dir)
            self.train_masks = torch.cat([self.train_masks, torch.from_numpy(masks.masks[train_index])])
            self.train_supervised = torch.cat([self.train_supervised, torch.ones(len(train), dtype=torch.bool)])
            self.donors = torch.cat([self.donors, first_new + torch.arange(len(train))])
            self.val_masks = MaskSet(
                np.concatenate([self.val_masks.masks, masks.masks[val_index]]),
                np.concatenate([self.val_masks.annotated, masks.annotated[val_index]]),
            )
        if self.framed_images is not None:
            framed, framed_masks = [], []
            for box_gamma in self.aug.gamma:
                framing = GammaFraming.of(self.preprocess, box_gamma)
                copy = load_lgg(c.lgg, framing, self.classes, sites=sites, cache_dir=c.cache_dir)
                framed.append(torch.from_numpy(np.ascontiguousarray(copy.images.images[train_index])))
                if c.masks:
                    framed_masks.append(
                        torch.from_numpy(load_lgg_masks(copy, framing, cache_dir=c.cache_dir).masks[train_index])
                    )
            self.framed_images = torch.cat([self.framed_images, torch.stack(framed)], dim=1)
            if c.masks:
                self.framed_masks = torch.cat([self.framed_masks, torch.stack(framed_masks)], dim=1)
        log.info(
            "TCGA-LGG (%s): %d training slices of %d patients, %d validation slices of %d patients",
            ", ".join(sites),
            len(train),
            len(set(train.patient)),
            len(val),
            len(set(val.patient)),
        )

    def _hold_out(self, root: Path, training):
        """Leave one collection out: keep the other collections' Training images that duplicate none of it."""
        from brainmri.data.collections import plan_holdout, read_origins

        c = self.cfg
        testing = load_folder(
            root / "Testing", self.preprocess, cache_dir=c.cache_dir, classes=self.classes, progress=self.dist.main
        )
        self.holdout = plan_holdout(training, testing, read_origins(c.origins), c.holdout)
        log.info("holding out %s: %s", c.holdout, self.holdout.summary())
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "holdout.json").write_text(
                json.dumps(
                    {**self.holdout.summary(), "dropped_duplicate_paths": self.holdout.dropped_duplicates}, indent=2
                )
            )
        return training.subset(self.holdout.train_index)

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

    def _write_split(self) -> None:
        with open(self.out / SPLIT_FILE, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "split"])
            for name, s in (("train", self.train_set), ("val", self.val_set)):
                for path, label in zip(s.paths, s.labels):
                    writer.writerow([path, self.classes[label], name])

    # -- state
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
        saved = [row for row in self.history if row.get("best")]  # the saved epoch kept the floor (always, without one)
        self.best_meets_floor = bool(saved) and saved[-1].get("meets_floor", True)
        log.info("resumed %s at epoch %d", self.out, self.start_epoch)

    # -- epochs
    def _batches(self, epoch: int):
        """Deterministic per epoch (seed, epoch): a resumed run sees the same batches."""
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        order = (
            torch.tensor(list(self._balanced_sampler(gen)))
            if self.cfg.balance != "none"
            else torch.randperm(len(self.train_set), generator=gen)
        )
        share = rank_slice(self.cfg.batch_size, self.dist)
        for step in range(self.steps_per_epoch):
            index = order[step * self.cfg.batch_size : (step + 1) * self.cfg.batch_size]
            images = self.train_images[index].unsqueeze(1).float().div_(255)
            labels = self.train_labels[index]
            if self.framed_images is not None:  # --framing-prob: some slices framed as after a gamma change
                rows = (torch.rand(len(index), generator=gen) < self.cfg.framing_prob).nonzero().flatten()
                views = torch.randint(len(self.framed_images), (len(rows),), generator=gen)
                images[rows] = self.framed_images[views, index[rows]].unsqueeze(1).float().div_(255)
            if self.train_masks is None:  # no masks: images and labels only
                x = self._model_input(augment_batch(images, self.aug, gen)[share])
                yield x, labels[share].to(self.device)
                continue
            masks = self.train_masks[index].unsqueeze(1).float().div_(255)
            if self.framed_masks is not None:
                masks[rows] = self.framed_masks[views, index[rows]].unsqueeze(1).float().div_(255)
            supervised = self.train_supervised[index].clone()
            if self.cfg.paste_prob and len(self.donors):
                chosen = (labels == self.classes.index("notumor")) & (
                    torch.rand(len(index), generator=gen) < self.cfg.paste_prob
                )
                donors = self.donors[torch.randint(len(self.donors), (int(chosen.sum()),), generator=gen)]
                images, masks, labels = paste_lesions(
                    images,
                    masks,
                    labels,
                    chosen,
                    self.train_images[donors].unsqueeze(1).float().div_(255),
                    self.train_masks[donors].unsqueeze(1).float().div_(255),
                    self.train_labels[donors],
                )
                supervised |= chosen
            images, masks = augment_batch(images, self.aug, gen, masks=masks)
            yield (
                self._model_input(images[share]),
                labels[share].to(self.device),
                masks[share].to(self.device),
                supervised[share].to(self.device),
            )

    def _balanced_sampler(self, gen: torch.Generator):
        """One epoch's draw in which every class is equally likely (with replacement): a class with few images
        is seen as often as one with many, each of its images more often."""
        from torch.utils.data import WeightedRandomSampler

        cell = self.train_labels
        if self.cfg.balance == "sources":
            cell = self.train_source * len(self.classes) + self.train_labels
        counts = torch.bincount(cell).double()
        weights = (1.0 / counts)[cell]
        return WeightedRandomSampler(weights, len(self.train_set), replacement=True, generator=gen)

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
            self._batches(epoch),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{c.epochs}",
            disable=None if self.dist.main else True,
            leave=False,
        )
        for step, (x, y, *mask_batch) in enumerate(bar):
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
            )
            if self.ema is not None and not in_head_phase:
                self.ema.update(self.model, step=global_step)
            total_loss += loss * len(y)
            correct += hits
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - start
        return {
            "train_loss": total_loss / seen,
            "train_acc": correct / seen,
            "train_img_s": seen * self.dist.world / seconds,
            "train_seconds": seconds,
        }

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
        """Calibrate the best release on validation, measure loop vs bare step, write summary.json."""
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
        summary["bare_step_img_s"] = self.bare_step_speed()
        if summary["loop_img_s"] and summary["bare_step_img_s"]:
            summary["loop_vs_bare"] = summary["loop_img_s"] / summary["bare_step_img_s"]
        summary["wall_seconds"] = round(self.wall_seconds, 1)
        if self.dist.main:
            if (self.out / "summary.json").is_file():  # a re-run of finish() keeps earlier figures
                summary = {**json.loads((self.out / "summary.json").read_text()), **summary}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            print(
                f"training loop {summary['loop_img_s']:.1f} img/s, bare forward/backward/step "
                f"{summary['bare_step_img_s']:.1f} img/s ({100 * summary.get('loop_vs_bare', 0):.0f} %)"
            )
        return summary

    @property
    def wall_seconds(self) -> float:
        """Wall-clock time this run has spent in processes (setup, epochs, validation, calibration; a resumed
        run adds its earlier processes up to their last saved epoch)."""
        return self._wall_before + time.monotonic() - self._started

    def bare_step_speed(self, steps: int = 6) -> float:
        """img/s of forward/backward/step alone, on batches made in advance from the same data."""
        import copy

        model = copy.deepcopy(self.train_module).train()
        net = model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        batches = [b for _, b in zip(range(steps), self._batches(0))]

        def step(x, y, masks=None, supervised=None):
            train_step(
                net,
                opt,
                x,
                y,
                bf16=self.bf16,
                masks=masks,
                supervised=supervised,
                seg_weight=self.cfg.seg_weight,
                cam_weight=self.cfg.cam_weight,
                cam_target=self.cfg.cam_target,
            )

        step(*batches[0])  # warm-up
        start = time.perf_counter()
        for batch in batches[1:]:
            step(*batch)
        seconds = time.perf_counter() - start
        return (len(batches) - 1) * self.cfg.batch_size / seconds
