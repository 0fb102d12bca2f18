"""Predictor: a release folder loaded once, answering predict / predict_batch / explain.

Every input goes through the same path as training and evaluation:
:func:`brainmri.imageio.load_grayscale` → :class:`brainmri.transforms.Preprocess`
(from the release folder's ``pretrained_cfg``) → model → ``softmax(logits / T)``
with the temperature ``T`` stored in ``config.json``.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from .checkpoint import load_release
from .explain import class_activation_maps, freeze_below, overlay
from .imageio import ImageSource, load_grayscale
from .model import target_layer
from .transforms import Preprocess


@dataclass
class Explanation:
    probabilities: dict[str, float]
    target: str  # the class the heatmap explains
    heatmap: np.ndarray  # H x W float32 in [0, 1], at the model's input size
    overlay: np.ndarray  # H x W x 3 uint8, drawn on `image`
    image: np.ndarray  # H x W uint8: exactly what the model saw (before normalisation)
    method: str

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


class Predictor:
    def __init__(self, model: torch.nn.Module, config: dict, *, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.labels: list[str] = list(config["label_names"])
        self.temperature = float(config.get("temperature", 1.0))
        self.preprocess = Preprocess.from_config(model.pretrained_cfg)
        self.target_layer = target_layer(self.model)
        freeze_below(self.model, self.target_layer)
        # Grad-CAM hooks live on the shared model: one explanation at a time.
        self._cam_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, expected_labels: Sequence[str] | None = None,
                        device: str | torch.device = "cpu") -> "Predictor":
        """Load a release folder or Hub id (``hf-hub:user/repo``), verifying its sha256 and labels."""
        model, config = load_release(name_or_path, list(expected_labels) if expected_labels else None)
        return cls(model, config, device=device)

    # -- preprocessing
    def prepare(self, image: ImageSource) -> np.ndarray:
        """Any supported input → the uint8 square the model sees."""
        return self.preprocess.fit(load_grayscale(image))

    def _inputs(self, fitted: list[np.ndarray]) -> torch.Tensor:
        return self.preprocess.to_tensor(fitted).to(self.device)

    def _to_dict(self, probs: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}

    # -- inference
    def logits(self, fitted: list[np.ndarray] | np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """Raw logits for prepared images (before temperature)."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(fitted), batch_size):
                out.append(self.model(self._inputs(list(fitted[start:start + batch_size]))).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.labels))

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return torch.softmax(logits.float() / self.temperature, dim=-1).numpy()

    def predict(self, image: ImageSource) -> dict[str, float]:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Iterable[ImageSource], batch_size: int = 32) -> list[dict[str, float]]:
        fitted = [self.prepare(image) for image in images]
        return [self._to_dict(p) for p in self.probabilities(self.logits(fitted, batch_size))]

    def explain(self, image: ImageSource, target: str | int | None = None, method: str = "gradcam") -> Explanation:
        """Probabilities, heatmap and overlay of one forward pass; ``target`` defaults to the predicted class."""
        fitted = self.prepare(image)
        if isinstance(target, str):
            if target not in self.labels:
                raise ValueError(f"unknown class {target!r}; the model knows {self.labels}")
            target = self.labels.index(target)
        with self._cam_lock:
            result = class_activation_maps(self.model, self.target_layer, self._inputs([fitted]),
                                           None if target is None else [target], method)
        probs = self.probabilities(result.logits)[0]
        index = int(np.argmax(probs)) if target is None else int(target)
        heatmap = result.heatmaps[0]
        return Explanation(self._to_dict(probs), self.labels[index], heatmap, overlay(fitted, heatmap), fitted, method)
