"""A training run's settings and the named recipes: the one place their defaults live.

``train.py`` takes its command-line defaults from :class:`TrainConfig`; nothing here imports torch, so
the command line starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

DROP_RATE = 0.3  # the head's dropout (the research report's); MC dropout reuses the rate a release records

# How batches are drawn: uniformly; every class equally likely; every (source, class) pair equally likely.
BALANCE = ("none", "classes", "sources")

RECIPE_FIELDS = ("optimizer", "lr", "head_lr", "head_epochs", "weight_decay", "warmup_epochs", "schedule")
RECIPE_FIELDS += ("label_smoothing", "augment", "ema_decay", "patience")
RECIPES: dict[str, dict[str, Any]] = {
    # The research report: Adam, batch 32, head at 1e-3 then everything at 1e-4, early stopping.
    "report": dict(zip(RECIPE_FIELDS, ("adam", 1e-4, 1e-3, 2, 0.0, 0, "constant", 0.0, "report", 0.0, 5))),
    # Without ImageNet weights: AdamW, warm-up + cosine, label smoothing, stronger augmentation, EMA.
    "scratch": dict(zip(RECIPE_FIELDS, ("adamw", 2e-3, 0.0, 0, 0.05, 3, "cosine", 0.1, "strong", 0.998, 0))),
}


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "convnext_tiny"
    pretrained: bool = True
    init: str | None = None
    image_size: int = 224
    init_image_size: int | None = None  # with init: train at this input size, not the release's
    recipe: str = "report"
    epochs: int = 50
    batch_size: int = 32
    optimizer: str | None = None
    lr: float | None = None
    head_lr: float | None = None
    head_epochs: int | None = None
    weight_decay: float | None = None
    warmup_epochs: int | None = None
    schedule: str | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    ema_decay: float | None = None
    patience: int | None = None
    drop_rate: float = DROP_RATE
    drop_path_rate: float = 0.0
    ls_init_value: float | None = None
    val_fraction: float = 0.1
    seed: int = 0
    split_seed: int | None = None  # the validation split's seed (None: seed); other seeds on the same split
    steps_per_epoch: int | None = None  # cap, for smoke tests
    bf16: str = "auto"  # auto | on | off
    channels_last: bool = True
    threads: int | None = None
    cache_dir: str | None = None
    resume: bool = False
    half_weights: bool = False
    content_crop: bool = True
    # how the head is found (brainmri.inference.preprocess.CROPS); None: the --init release's, else "threshold"
    crop: str | None = None
    # what is done to the intensities after the geometry (brainmri.inference.preprocess.INTENSITIES); None: the
    # --init release's, else "none"
    intensity: str | None = None
    output_stride: int | None = None  # 16: a last feature map twice as fine (dilated last stage), for CAMs
    # leave-one-collection-out (see brainmri.data.collections): train without one collection
    origins: str | None = None
    holdout: str | None = None
    # a second source (see brainmri.data.lgg): TCGA-LGG's labelled slices of every institution but the held-out ones
    lgg: str | None = None
    lgg_holdout: list[str] | None = None
    # where to look (see brainmri.data.masks): tumour masks, an auxiliary tumour map, lesions pasted into tumour-free
    # slices
    masks: str | None = None
    seg_weight: float = 0.0
    cam_weight: float = 0.0
    cam_target: str = "widened"  # which heatmap cells count as on the tumour (training.cam_target_cells)
    paste_prob: float = 0.0
    paste_into: str = "all"  # which tumour-free slices may receive a lesion: "all", or "tcga-lgg" (theirs only)
    # intensity augmentation on top of the recipe's
    invert_prob: float = 0.0
    curve_prob: float = 0.0
    marker_prob: float = 0.0  # letters, arrows, scale bars burnt in near the edges (the head crop's test, in training)
    gamma: tuple[float, float] | None = None  # random gamma range (None: the augmentation's own; strong: 0.6-1.6)
    framing_prob: float = 0.0  # share of slices framed as the content crop frames them after a gamma change
    balance: str = (
        "none"  # "classes" / "sources": drawn with replacement, weighted 1 / the image's class (source-class) count
    )
    # epoch choice: an epoch whose clean validation accuracy is more than this below the starting (--init) model's is
    # chosen only while no epoch has stayed above it (None: the selection loss alone)
    clean_floor: float | None = None
    # Group DRO's step size over the (source, class) cells (brainmri.training.losses.GroupRobust); 0: a plain mean
    group_robust: float = 0.0
    # MixStyle's probability per batch (brainmri.training.mixstyle; after the first two feature stages); 0: off
    mixstyle: float = 0.0
    ok_target: float | None = None  # the verdict's confidence threshold fitted for this accuracy (calibration)
    model_args: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "TrainConfig":
        """Fill every unset recipe field from the named recipe."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose {sorted(RECIPES)}")
        if (self.seg_weight or self.cam_weight or self.paste_prob) and not self.masks:
            raise ValueError("--seg-weight, --cam-weight and --paste-prob need --masks (the tumour masks folder)")
        if self.paste_into not in ("all", "tcga-lgg"):
            raise ValueError(f"--paste-into must be all or tcga-lgg, got {self.paste_into!r}")
        if self.paste_into == "tcga-lgg" and self.paste_prob and not self.lgg:
            raise ValueError("--paste-into tcga-lgg needs --lgg (the TCGA-LGG folder)")
        if self.holdout and not self.origins:
            raise ValueError("--holdout needs --origins (the CSV of each image's collection)")
        for name in ("framing_prob", "marker_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(self, name)}")
        if self.clean_floor is not None and not (self.init and 0.0 <= self.clean_floor <= 1.0):
            raise ValueError(
                "--clean-floor needs --init (the starting model's validation accuracy is the reference) "
                f"and a value between 0 and 1, got {self.clean_floor}"
            )
        if self.balance not in BALANCE:
            raise ValueError(f"unknown --balance {self.balance!r}; choose one of {list(BALANCE)}")
        if self.lgg_holdout and not self.lgg:
            raise ValueError("--lgg-holdout needs --lgg (the TCGA-LGG folder)")
        values = asdict(self)
        for key, default in RECIPES[self.recipe].items():
            if values.get(key) is None:
                values[key] = default
        return TrainConfig(**values)


def default(name: str) -> Any:
    """TrainConfig's default for ``name`` (train.py's argparse defaults come from here)."""
    return TrainConfig.__dataclass_fields__[name].default


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a dict with extra keys (argparse's namespace, a run's args.json)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in names})
