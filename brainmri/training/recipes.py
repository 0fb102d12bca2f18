"""Recipes as files: a stage's options by name, the chain of stages it starts from, and its shipping rules.

A **stage** is a YAML file in ``recipes/`` (timm's ``-c`` config, nanoGPT's ``config/``)::

    init: r16                 # the stage it starts from (a file beside it); absent: from scratch
    args: {lr: 5.0e-4, epochs: 30, masks: "{masks}", ...}   # train.py's options, by their TrainConfig names
    release:                  # only on a chain's last stage
      steps: [sequence-check, export, evaluate, ...]
      rules: [{name: ..., file: metrics/lgg/lgg.json, key: by_sequence.flair.glioma.accuracy, min: 0.9}]
      yardsticks: {lgg-heldout-institution.json: ../r22-du/metrics/lgg/lgg.json}   # other runs' figures
      # (new-source-slices.csv: per-slice answers on a source the model never saw, for the Model tab's risk figure)
    runs: {r16: {weights_sha256: ...}}   # the shipped chain's stages, as they were run (optional)

Strings in ``args`` may name the machine's folders (``{data}``, ``{masks}``, ``{lgg}``, ``{origins}``), given on
the command line. Following ``init`` back gives the chain; ``train.py release`` trains every stage in order
(each from the one before's release), then runs the release steps. Every step writes a stamp, the sha256 of what
it read (its arguments and the release's weights and config: a change of rules retrains nothing); a step whose
stamp matches is skipped, so a
run killed at any point continues where it stopped and gives the release an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

PLACES = ("data", "masks", "lgg", "origins")
STEPS = (
    "heldout-eval",
    "sequence-check",
    "flair-check",
    "export",
    "evaluate",
    "robustness",
    "screening",
    "localisation",
    "selective",
    "lgg-eval",
    "figures",
    "card",
    "benchmark",
)


class RecipeError(ValueError):
    pass


@dataclass
class Stage:
    name: str
    path: Path
    init: str | None
    args: dict[str, Any]
    release: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def read_stage(path: str | os.PathLike) -> Stage:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"no recipe file at {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise RecipeError(f"{path} must hold a mapping (init, args, release)")
    unknown = set(values) - {"init", "args", "release", "runs", "about"}
    if unknown:
        raise RecipeError(f"{path}: unknown keys {sorted(unknown)}")
    args = values.get("args") or {}
    from brainmri.training.config import TrainConfig

    wrong = sorted(set(args) - set(TrainConfig.__dataclass_fields__) - {"evaluate"})
    if wrong:
        raise RecipeError(f"{path}: {wrong} are not training options")
    if "init" in args or "out" in args or "data" in args:
        raise RecipeError(f"{path}: init, out and data are set by the chain, not in args")
    steps = (values.get("release") or {}).get("steps", [])
    if set(steps) - set(STEPS):
        raise RecipeError(f"{path}: unknown release steps {sorted(set(steps) - set(STEPS))}; known: {list(STEPS)}")
    return Stage(path.stem, path, values.get("init"), args, values.get("release") or {}, values.get("runs") or {})


def read_chain(path: str | os.PathLike) -> list[Stage]:
    """The stages from the first (from scratch) to the one at ``path``, following ``init``."""
    chain = [read_stage(path)]
    while chain[0].init:
        if any(s.name == chain[0].init for s in chain):
            raise RecipeError(f"the chain of {path} loops at {chain[0].init}")
        chain.insert(0, read_stage(chain[0].path.parent / f"{chain[0].init}.yaml"))
    return chain


def config_defaults(path: str | os.PathLike, places: dict[str, str] | None = None) -> dict[str, Any]:
    """A stage's ``args`` as train.py defaults (``train.py train --config FILE``; flags on the command line win)."""
    return resolve_args(read_stage(path).args, places or {})


def resolve_args(args: dict[str, Any], places: dict[str, str]) -> dict[str, Any]:
    out = {}
    for key, value in args.items():
        if isinstance(value, str) and "{" in value:
            try:
                value = value.format(**places)
            except KeyError as err:
                raise RecipeError(f"{key}: {value!r} needs --{err.args[0]} on the command line") from err
        out[key] = value
    return out


NEGATED = ("pretrained", "content_crop", "evaluate", "channels_last")  # train.py's --no-X flags


def to_argv(values: dict[str, Any]) -> list[str]:
    """``{"lr": 5e-4, "pretrained": False, "gamma": [0.45, 1.8]}`` → train.py flags."""
    argv = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            if key in NEGATED:  # on by default: only --no-X says something (and --pretrained, which has both)
                argv += ["--no-" + flag[2:]] if not value else [flag] if key == "pretrained" else []
            elif value:
                argv.append(flag)
            continue
        if isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


# ----------------------------------------------------------------------------- stamps


# What the export step adds to a release's config.json: not an input of any step (the weights it checks are).
def lookup(values: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def check_rules(run: str | os.PathLike, recipe: str | os.PathLike) -> list[dict[str, Any]]:
    """Each rule of the recipe's ``release.rules`` against the run's saved figures: its figure and met / not met
    (a missing figure is not met)."""
    run = Path(run)
    out = []
    for rule in read_stage(recipe).release.get("rules", []):
        path = run / rule["file"]
        figure = lookup(json.loads(path.read_text()), rule["key"]) if path.is_file() else None
        if isinstance(figure, (int, float)):
            met = ("min" not in rule or figure >= rule["min"]) and ("max" not in rule or figure <= rule["max"])
        else:
            met = False
        out.append({**rule, "figure": figure, "met": met})
    return out
