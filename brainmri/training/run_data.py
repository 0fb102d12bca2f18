"""A training run's data: what the trainer reads each epoch, assembled once from the options."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from brainmri.data.augment import augment_batch, draw_donors, paste_lesions
from brainmri.data.dedup import duplicate_groups, find_pairs
from brainmri.data.folders import SPLIT_FILE, check_classes, list_classes, load_folder, split_train_val
from brainmri.inference.preprocess import GammaFraming, Preprocess
from brainmri.training.distributed import rank_slice
from brainmri.training.losses import GroupRobust, WithTumourMap

log = logging.getLogger(__name__)


class RunData:
    """The data side of a :class:`~brainmri.training.trainer.Trainer`: the training and validation sets (Kaggle folders,
    TCGA-LGG, a held-out collection), their masks and framings, the split file, and the batches of an epoch."""

    def setup(self) -> None:
        c = self.cfg
        root = Path(c.data)
        train_root = root / "Training" if (root / "Training").is_dir() else root
        self.classes = list_classes(train_root)
        self.label_names = self.classes
        torch.manual_seed(c.seed)
        self.model = self._build_model()
        c = self.cfg  # with --init, the release's architecture and input size
        if c.lgg:  # the weights' licence, saved with the release (a later stage from it keeps it)
            from brainmri.data.lgg import LICENCE

            self.model.pretrained_cfg = {**self.model.pretrained_cfg, "license": LICENCE}
        check_classes(self.classes, self.label_names, allow_subset=False)
        self.preprocess = (
            Preprocess.from_release_config(self.init_config)
            if c.init
            else Preprocess.from_model(self.model, content_crop=c.content_crop)
        )
        if c.crop is not None:  # e.g. a stage that moves a released model onto the head-region crop
            self.preprocess = replace(self.preprocess, crop=c.crop)
        if c.intensity is not None:  # e.g. a stage that moves a released model onto head-levelled intensities
            self.preprocess = replace(self.preprocess, intensity=c.intensity)
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
            self.donors = torch.from_numpy(np.flatnonzero(train_masks.annotated))  # figshare: each mask has a lesion
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
        # --paste-prob draws a lesion's donor from the recipient's group: 0 the Kaggle folder (sequence unknown),
        # 1 + the index of a TCGA-LGG slice's sequence
        self.paste_group = torch.zeros(len(self.train_set), dtype=torch.int64)
        if c.lgg:
            self._add_lgg()

        self.model.to(self.device)
        if c.mixstyle:
            from brainmri.training.mixstyle import add_mixstyle

            add_mixstyle(self.model, c.mixstyle)  # before the EMA copy, which is never in training mode
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
        self.robust = GroupRobust(2 * len(self.classes), c.group_robust) if c.group_robust else None
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
        from brainmri.data.lgg import COLLECTION, SEQUENCES, load_lgg, load_lgg_masks, split_patients, training_sites
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
        sequence_group = torch.tensor([1 + SEQUENCES.index(s) for s in train.sequence], dtype=torch.int64)
        self.paste_group = torch.cat([self.paste_group, sequence_group])
        if c.masks:  # every labelled TCGA-LGG slice has its reader's mask (empty on "notumor" slices)
            masks = load_lgg_masks(lgg, self.preprocess, cache_dir=c.cache_dir)
            self.train_masks = torch.cat([self.train_masks, torch.from_numpy(masks.masks[train_index])])
            self.train_supervised = torch.cat([self.train_supervised, torch.ones(len(train), dtype=torch.bool)])
            with_lesion = np.flatnonzero(masks.masks[train_index].reshape(len(train), -1).any(axis=1))
            self.donors = torch.cat([self.donors, first_new + torch.from_numpy(with_lesion)])
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

    def _write_split(self) -> None:
        with open(self.out / SPLIT_FILE, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "split"])
            for name, s in (("train", self.train_set), ("val", self.val_set)):
                for path, label in zip(s.paths, s.labels):
                    writer.writerow([path, self.classes[label], name])

    # -- state

    def _cells(self, index, labels: torch.Tensor) -> torch.Tensor:
        """The (source, class) cell of the training images at ``index`` labelled ``labels``: what ``--balance sources``
        draws evenly and Group DRO weighs."""
        return self.train_source[index] * len(self.classes) + labels

    def _batches(self, epoch: int, with_cells: bool = False):
        """Deterministic per epoch (seed, epoch): a resumed run sees the same batches. Each batch is ``(x, y)``, then
        with ``with_cells`` the images' cells, then with masks the masks and which images they supervise."""
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
                yield x, labels[share].to(self.device), *self._batch_cells(index, labels, share, with_cells)
                continue
            masks = self.train_masks[index].unsqueeze(1).float().div_(255)
            if self.framed_masks is not None:
                masks[rows] = self.framed_masks[views, index[rows]].unsqueeze(1).float().div_(255)
            supervised = self.train_supervised[index].clone()
            if self.cfg.paste_prob and len(self.donors):
                chosen = (labels == self.classes.index("notumor")) & (
                    torch.rand(len(index), generator=gen) < self.cfg.paste_prob
                )
                if self.cfg.paste_into == "tcga-lgg":  # the Kaggle slices keep their own look and class
                    chosen &= self.train_source[index] == 1
                rows = torch.nonzero(chosen).flatten()
                kept, donors = draw_donors(
                    self.paste_group[index[rows]], self.donors, self.paste_group[self.donors], gen
                )
                chosen[rows[~kept]] = False
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
                *self._batch_cells(index, labels, share, with_cells),
                masks[share].to(self.device),
                supervised[share].to(self.device),
            )

    def _batch_cells(self, index, labels, share, wanted: bool) -> tuple:
        """The batch's cells as its labels now stand (a pasted lesion changes an image's class), or nothing."""
        return (self._cells(index, labels)[share].to(self.device),) if wanted else ()

    def _balanced_sampler(self, gen: torch.Generator):
        """One epoch's draw in which every class is equally likely (with replacement): a class with few images
        is seen as often as one with many, each of its images more often."""
        from torch.utils.data import WeightedRandomSampler

        cell = self._cells(slice(None), self.train_labels) if self.cfg.balance == "sources" else self.train_labels
        counts = torch.bincount(cell).double()
        weights = (1.0 / counts)[cell]
        return WeightedRandomSampler(weights, len(self.train_set), replacement=True, generator=gen)
