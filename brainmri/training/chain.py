"""`train.py release`: a recipe chain run to a release folder, stage by stage and then its release steps, each
step stamped with the digest of its inputs so that a rerun redoes only what changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from brainmri.training.recipes import (
    RecipeError,
    Stage,
    read_chain,
    resolve_args,
    to_argv,
)

EXPORT_KEYS = ("onnx", "files_sha256")
NEW_SOURCE_ANSWERS = "new-source-slices.csv"  # a gathered yardstick: answers on a source the model never saw

log = logging.getLogger(__name__)


# what a training run writes beside its release that describes how it trained
TRAINING_RECORD = ("args.json", "epochs.csv", "summary.json", "curves.png", "augmented_batch.png")

# release steps that write a block into the release's config.json, and its key
CONFIG_WRITERS = {"sequence-check": "sequence_check", "flair-check": "flair_check"}


def written_from(steps: list[str], step: str) -> tuple[str, ...]:
    """The config.json keys that ``step`` and the steps after it write: left out of ``step``'s inputs, or its own
    output would make its stamp stale and every later run of the release would do it again."""
    return tuple(CONFIG_WRITERS[s] for s in steps[steps.index(step) :] if s in CONFIG_WRITERS)


def folder_digest(folder: Path, names=("model.safetensors", "config.json"), leave_out: tuple[str, ...] = ()) -> str:
    """The sha256 of a release's weights and settings (config.json without what the export adds, nor the blocks
    named in ``leave_out``)."""
    digest = hashlib.sha256()
    skip = set(EXPORT_KEYS) | set(leave_out)
    for name in names:
        path = folder / name
        data = path.read_bytes() if path.is_file() else b"-"
        if name == "config.json" and path.is_file():
            config = json.loads(data)
            data = json.dumps({k: v for k, v in config.items() if k not in skip}, sort_keys=True).encode()
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
            "figures": [
                "figures",
                "--metrics",
                str(metrics),
                *(
                    ["--new-source-answers", str(metrics / NEW_SOURCE_ANSWERS)]
                    if NEW_SOURCE_ANSWERS in (self.final.release.get("yardsticks") or {})
                    else []
                ),
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
            inputs = _sha(json.dumps(commands[step]), folder_digest(rel, leave_out=written_from(conf["steps"], step)))
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
        does not make, e.g. the audit or crossval.json, stay) with the last stage's training record
        (:data:`TRAINING_RECORD`), then write its card again from ``assets/metrics`` so that it also says what
        those files say (its Training section is kept)."""
        from brainmri.evaluation.modelcard import write_model_card

        model = assets / "model"
        staging = assets / ".model.new"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(self.release_dir, staging)
        shutil.copytree(self.out / "metrics", assets / "metrics", dirs_exist_ok=True)
        for name in TRAINING_RECORD:  # the last stage's, beside its evaluation (the Model tab shows the curves)
            source = self.out / self.final.name / name
            if source.is_file():
                shutil.copyfile(source, assets / "metrics" / name)
        write_model_card(staging, assets / "metrics")
        shutil.rmtree(model, ignore_errors=True)
        os.replace(staging, model)


# ----------------------------------------------------------------------------- shipping rules
