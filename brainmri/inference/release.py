"""Release folders: ``model.safetensors`` + ``config.json`` in timm's Hub format.

A release folder is the single source of truth for the architecture, class
names, preprocessing (``pretrained_cfg``) and calibration temperature. It loads
with ``timm.create_model("local-dir:DIR", pretrained=True)`` and uploads to the
Hub unchanged; a Hub id (``hf-hub:user/repo`` or ``user/repo``) is downloaded to
the local cache and then goes through the same local-folder code.

Folders are written to a temporary sibling and renamed into place, so a crash
never leaves a half-written release behind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import save_for_hf

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A release folder is missing, damaged, or not the model the caller expects."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_release(
    model: torch.nn.Module,
    directory: str | os.PathLike,
    label_names: list[str],
    *,
    temperature: float = 1.0,
    extra: dict[str, Any] | None = None,
    half: bool = False,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    content_crop: bool = False,
    preprocessing: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a release folder at ``directory`` (replacing it atomically); ``preprocessing``: the
    steps before timm's geometry (:meth:`Preprocess.release_steps`; default: grayscale, ``content_crop``'s
    threshold crop, padding to a square)."""
    directory = Path(directory)
    if len(label_names) != model.num_classes:
        raise CheckpointError(f"{len(label_names)} label names for a model with {model.num_classes} outputs")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; a release folder is meant to be shared
    try:
        # A copy in contiguous memory (safetensors refuses channels_last views), fp16 if asked.
        source = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        if half:
            source = source.half()
        cfg = model.pretrained_cfg
        data_config = {
            k: cfg[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std") if k in cfg
        }
        model_config = {
            "label_names": list(label_names),
            "temperature": float(temperature),
            "preprocessing": preprocessing
            or {"grayscale": True, "content_crop": bool(content_crop), "pad_to_square": True},
            **(extra or {}),
        }
        save_for_hf(source, str(staging), model_config=model_config, safe_serialization=True, data_config=data_config)
        config_path = staging / CONFIG
        config = json.loads(config_path.read_text())
        config["weights_sha256"] = sha256_file(staging / WEIGHTS)
        if extra_tensors:
            from safetensors.torch import save_file

            config["files_sha256"] = {}
            for name, tensors in extra_tensors.items():
                save_file(tensors, staging / name)
                config["files_sha256"][name] = sha256_file(staging / name)
        config["weights_dtype"] = "float16" if half else "float32"
        config_path.write_text(json.dumps(config, indent=2))
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def add_files(
    directory: str | os.PathLike, files: dict[str, str | os.PathLike], config_updates: dict[str, Any] | None = None
) -> Path:
    """Add ``files`` (name in the folder → source path) to a release folder, record their sha256 in
    ``config.json`` with ``config_updates``, and swap the folder in atomically."""
    directory = Path(directory)
    config = verify_release(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    os.chmod(staging, 0o755)
    try:
        shutil.copytree(directory, staging, dirs_exist_ok=True)
        digests = dict(config.get("files_sha256", {}))
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            digests[name] = sha256_file(staging / name)
        config.update(config_updates or {})
        config["files_sha256"] = digests
        (staging / CONFIG).write_text(json.dumps(config, indent=2))
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _replace_dir(staging: Path, directory: Path) -> None:
    old = None
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    staging.rename(directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def resolve_release(name_or_path: str | os.PathLike) -> Path:
    """A local folder as is; ``hf-hub:user/repo`` downloaded to the Hub cache. A bare ``user/repo`` that is no
    local folder is refused with a hint (a mistyped path must not start a download)."""
    text = str(name_or_path)
    if text.startswith("local-dir:"):
        text = text[len("local-dir:") :]
    path = Path(text)
    if path.is_dir():
        return path
    if text.startswith("hf-hub:"):
        repo_id = text[len("hf-hub:") :]
        from huggingface_hub import snapshot_download

        try:
            return Path(
                snapshot_download(repo_id, allow_patterns=[WEIGHTS, CONFIG, "README.md", "*.safetensors", "*.onnx"])
            )
        except Exception as err:  # offline, missing repo, auth: one clear line
            raise CheckpointError(
                f"cannot fetch {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: {err})"
            ) from None
    if text.count("/") == 1 and not text.startswith((".", "/")):
        raise CheckpointError(f"no release folder at {text}; for a model on the Hugging Face Hub write hf-hub:{text}")
    raise CheckpointError(f"no release folder at {text}")


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a release folder: {CONFIG} is missing")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    for key in ("architecture", "num_classes", "label_names", "pretrained_cfg"):
        if key not in config:
            raise CheckpointError(f"{path} lacks {key!r}")
    return config


def verify_release(directory: str | os.PathLike, expected_labels: list[str] | None = None) -> dict[str, Any]:
    """Check weights against the recorded sha256 and the class list against the caller's; return the config."""
    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory} lacks {WEIGHTS}")
    recorded = config.get("weights_sha256")
    if recorded and sha256_file(weights) != recorded:
        raise CheckpointError(
            f"{weights} does not match the sha256 in {CONFIG}: the weights are damaged or were replaced"
        )
    for name, digest in config.get("files_sha256", {}).items():
        if not (directory / name).is_file() or sha256_file(directory / name) != digest:
            raise CheckpointError(f"{directory / name} is missing or does not match the sha256 in {CONFIG}")
    labels = list(config["label_names"])
    if len(labels) != config["num_classes"]:
        raise CheckpointError(f"{CONFIG}: {len(labels)} label names for {config['num_classes']} classes")
    if expected_labels is not None and labels != list(expected_labels):
        raise CheckpointError(f"the model's classes {labels} differ from the expected {list(expected_labels)}")
    return config


@dataclass(frozen=True)
class Release:
    """A verified release folder: where it lies and its ``config.json``, exactly as on disk (the one source of
    truth for class names, temperature, preprocessing, screening thresholds and checksums)."""

    folder: Path
    config: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return list(self.config["label_names"])

    @property
    def temperature(self) -> float:
        return float(self.config.get("temperature", 1.0))

    @property
    def weights_sha256(self) -> str | None:
        return self.config.get("weights_sha256")

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.config.get("preprocessing", {}))

    @property
    def screening(self) -> dict[str, Any]:
        return dict(self.config.get("screening", {}))

    @property
    def training(self) -> dict[str, Any]:
        """What training recorded (recipe, epoch, validation figures, drop_rate, ...)."""
        return dict(self.config.get("brainmri", {}))

    def path(self, name: str) -> Path:
        return self.folder / name


def load_release(
    name_or_path: str | os.PathLike, expected_labels: list[str] | None = None
) -> tuple[torch.nn.Module, Release]:
    """Verify and load a release folder (or Hub id); returns ``(model in eval mode, Release)``."""
    directory = resolve_release(name_or_path)
    config = verify_release(directory, expected_labels)
    model = timm.create_model(f"local-dir:{directory.resolve()}", pretrained=True)
    model.float().eval()
    return model, Release(directory, config)
