"""Recipes as files, and the one-command release that runs a chain of them.

A **stage** is a YAML file in ``recipes/`` (timm's ``-c`` config, nanoGPT's ``config/``)::

    init: r16                 # the stage it starts from (a file beside it); absent: from scratch
    args: {lr: 5.0e-4, epochs: 30, masks: "{masks}", ...}   # train.py's options, by their TrainConfig names
    release:                  # only on a chain's last stage
      steps: [sequence-check, export, evaluate, ...]
      rules: [{name: ..., file: metrics/lgg/lgg.json, key: by_sequence.flair.glioma.accuracy, min: 0.9}]
      yardsticks: {lgg-heldout-institution.json: ../r22-du/metrics/lgg/lgg.json}   # other runs' figures
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
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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


def to_argv(values: dict[str, Any]) -> list[str]:
    """``{"lr": 5e-4, "pretrained": False, "gamma": [0.45, 1.8]}`` → train.py flags."""
    argv = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            negative = {
                "pretrained": "--no-pretrained",
                "content_crop": "--no-content-crop",
                "evaluate": "--no-evaluate",
                "channels_last": "--no-channels-last",
            }
            if key in negative:
                argv += [] if value else [negative[key]]
                if key == "pretrained" and value:
                    argv.append("--pretrained")
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
EXPORT_KEYS = ("onnx", "files_sha256")


def folder_digest(folder: Path, names=("model.safetensors", "config.json")) -> str:
    """The sha256 of a release's weights and settings (config.json without what the export adds)."""
    digest = hashlib.sha256()
    for name in names:
        path = folder / name
        data = path.read_bytes() if path.is_file() else b"-"
        if name == "config.json" and path.is_file():
            config = json.loads(data)
            data = json.dumps({k: v for k, v in config.items() if k not in EXPORT_KEYS}, sort_keys=True).encode()
        digest.update(name.encode() + data)
    return digest.hexdigest()


class Stamps:
    """One JSON per finished step under ``RUN/.steps``: the sha256 of its inputs when it finished."""

    def __init__(self, run: Path):
        self.folder = run / ".steps"

    def done(self, step: str, inputs: str) -> bool:
        path = self.folder / f"{step}.json"
        return path.is_file() and json.loads(path.read_text()).get("inputs") == inputs

    def mark(self, step: str, inputs: str, **extra) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{step}.{os.getpid()}"
        tmp.write_text(json.dumps({"inputs": inputs, **extra}, indent=2))
        os.replace(tmp, self.folder / f"{step}.json")


def _sha(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ----------------------------------------------------------------------------- the release


@dataclass
class Release:
    """``train.py release``: a chain's stages, then its release steps, in ``out``."""

    recipe: Path
    out: Path
    places: dict[str, str]
    cli: Callable[[list[str]], int]  # train.main
    start: dict[str, str] = field(default_factory=dict)  # stage name -> an existing release folder of it
    cache_dir: str | None = None
    until: str | None = None  # stop after this step (tests: a kill at a known point)

    def __post_init__(self):
        self.chain = read_chain(self.recipe)
        self.stamps = Stamps(self.out)
        self.final = self.chain[-1]
        names = [s.name for s in self.chain]
        for name in self.start:
            if name not in names:
                raise RecipeError(f"--start-release {name}=...: {name} is not a stage of {names}")

    @property
    def release_dir(self) -> Path:
        return self.out / self.final.name / "release"

    def _run(self, step: str, argv: list[str], inputs: str) -> bool:
        """Run ``train.py argv`` unless its stamp matches; False when the chain should stop here."""
        if self.stamps.done(step, inputs):
            log.info("release: %s is up to date, skipped", step)
        else:
            log.info("release: %s: train.py %s", step, " ".join(argv))
            code = self.cli(argv)
            if code != 0:
                raise RecipeError(f"release step {step} failed (exit {code}): train.py {' '.join(argv)}")
            self.stamps.mark(step, inputs, argv=argv)
        return step != self.until

    def stages(self) -> bool:
        previous: Path | None = None
        skipping = bool(self.start)
        for stage in self.chain:
            if stage.name in self.start:  # an earlier run of the chain stands in for this stage and those before it
                previous = Path(self.start[stage.name])
                self._check_start(stage, previous)
                skipping = False
                continue
            if skipping:
                continue
            run = self.out / stage.name
            args = {
                "data": self.places["data"],
                "out": str(run),
                **resolve_args(stage.args, self.places),
                "evaluate": False,
                "cache_dir": self.cache_dir,
            }
            if stage.init:
                if previous is None:
                    raise RecipeError(f"stage {stage.name} starts from {stage.init}, which has no release")
                args["init"] = str(previous)
            argv = ["train", *to_argv(args), "--resume"]
            inputs = _sha(json.dumps(argv), folder_digest(previous) if previous else "")  # the args, not the rules
            if not self._run(f"stage-{stage.name}", argv, inputs):
                return False
            previous = run / "release"
        return True

    def _check_start(self, stage: Stage, folder: Path) -> None:
        expected = (self.final.runs.get(stage.name) or stage.runs.get(stage.name) or {}).get("weights_sha256")
        from brainmri.inference.release import read_config

        found = read_config(folder).get("weights_sha256")
        if expected and found != expected:
            raise RecipeError(
                f"{folder} is not the recorded {stage.name} (weights sha256 {found}, expected {expected})"
            )

    def steps(self) -> bool:
        rel, metrics = self.release_dir, self.out / "metrics"
        data, conf = self.places["data"], self.final.release
        cache = ["--cache-dir", self.cache_dir] if self.cache_dir else []
        masks = ["--masks", self.places["masks"]] if self.places.get("masks") else []
        commands = {
            "sequence-check": [
                "sequence-check",
                "--checkpoint",
                str(rel),
                "--data",
                data,
                *cache,
                *(["--labels", conf["sequence_labels"]] if conf.get("sequence_labels") else []),
            ],
            "heldout-eval": [
                "heldout-eval",
                "--checkpoint",
                str(rel),
                "--data",
                data,
                "--origins",
                self.places.get("origins", ""),
                "--collection",
                str(self.final.args.get("holdout")),
                "--out",
                str(metrics / "heldout"),
                *cache,
            ],
            "flair-check": [
                "flair-check",
                "--checkpoint",
                str(rel),
                "--lgg",
                self.places.get("lgg", ""),
                "--data",
                data,
                *(["--exclude-sites", *self.final.args["lgg_holdout"]] if self.final.args.get("lgg_holdout") else []),
                *cache,
            ],
            "export": ["export", "--checkpoint", str(rel), "--format", "onnx", "--data", data],
            "evaluate": ["evaluate", "--checkpoint", str(rel), "--data", data, "--out", str(metrics), *masks, *cache],
            "robustness": ["robustness", "--checkpoint", str(rel), "--data", data, "--out", str(metrics)],
            "screening": ["screening", "--checkpoint", str(rel), "--data", data, "--out", str(metrics)],
            "localisation": [
                "localisation",
                "--checkpoint",
                str(rel),
                "--data",
                data,
                *masks,
                "--out",
                str(metrics),
                *cache,
            ],
            "selective": [
                "selective",
                "--checkpoint",
                str(rel),
                "--data",
                data,
                "--out",
                str(metrics / "testing-selective"),
                "--mc-passes",
                "0",
                "--t2-stand-in",
                *cache,
            ],
            "lgg-eval": [
                "lgg-eval",
                "--checkpoint",
                str(rel),
                "--lgg",
                self.places.get("lgg", ""),
                "--out",
                str(metrics / "lgg"),
                *(["--sites", *conf["lgg_sites"]] if conf.get("lgg_sites") else []),
                *cache,
            ],
            "card": [
                "card",
                "--checkpoint",
                str(rel),
                "--metrics",
                str(metrics),
                *[a for s in self.chain if (self.out / s.name).is_dir() for a in ("--run", str(self.out / s.name))],
                "--command",
                f"python train.py release --recipe {self.recipe}",
            ],
        }
        self._gather_yardsticks(metrics)
        for step in conf.get("steps", []):
            if step == "benchmark":
                if not self._benchmark():
                    return False
                continue
            inputs = _sha(json.dumps(commands[step]), folder_digest(rel))
            if not self._run(step, commands[step], inputs):
                return False
        return True

    def _gather_yardsticks(self, metrics: Path) -> None:
        """``release.yardsticks``: figures of other runs (a held-out institution, a model without a source) copied
        into ``metrics/`` under the names the card, the README and the Model tab read."""
        for name, source in (self.final.release.get("yardsticks") or {}).items():
            path = self.out / source
            if not path.is_file():
                raise RecipeError(f"yardstick {name}: no {path} (run its chain first)")
            metrics.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, metrics / name)

    def _benchmark(self) -> bool:
        out = self.out / "metrics" / "benchmark.json"
        inputs = _sha(folder_digest(self.release_dir, ("model.safetensors", "model.onnx")))
        if self.stamps.done("benchmark", inputs):
            return "benchmark" != self.until
        import subprocess
        import sys

        command = [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "inference",
            "--model",
            str(self.release_dir),
            "--data",
            self.places["data"],
            "--no-int8",
            "--repeats",
            "30",
            "--limit",
            "64",
            "--json",
            str(out),
        ]
        subprocess.run(command, check=True)
        self.stamps.mark("benchmark", inputs, argv=command[1:])
        return "benchmark" != self.until

    def run(self) -> bool:
        """True when every stage and step is done."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "recipe.json").write_text(
            json.dumps(
                {
                    "recipe": str(self.recipe),
                    "chain": [s.name for s in self.chain],
                    "start": self.start,
                    "recipes_sha256": {s.name: s.text_sha256 for s in self.chain},
                },
                indent=2,
            )
        )
        return self.stages() and self.steps()

    def install(self, assets: Path) -> None:
        """Copy the release and its evaluation into ``assets/model`` and ``assets/metrics`` (files the chain
        does not make, e.g. the audit or crossval.json, stay)."""
        model = assets / "model"
        staging = assets / ".model.new"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(self.release_dir, staging)
        shutil.rmtree(model, ignore_errors=True)
        os.replace(staging, model)
        shutil.copytree(self.out / "metrics", assets / "metrics", dirs_exist_ok=True)


# ----------------------------------------------------------------------------- shipping rules


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
