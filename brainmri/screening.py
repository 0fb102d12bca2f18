"""Is this a brain MRI slice the model can speak about, and is the model sure?

Three checks, cheapest first, each with a plain-language reason:

1. **Colour**: MRI slices are gray; a source whose pixels differ between RGB
   channels by more than ``max_colourfulness`` on average is a photograph or a
   drawing, not a scan.
2. **Blank**: almost no contrast (std of the model input < ``min_std``).
3. **Unfamiliar**: the Mahalanobis distance of the model's pooled features to
   the nearest class centre (Lee et al., 2018), with class means and a shrunk
   shared covariance fitted on the training split. The threshold is the
   ``quantile`` of validation-split distances, so about 1 % of genuine slices
   are flagged; anything farther is "not like the slices the model learned from".
4. **Uncertain**: top calibrated probability below ``min_confidence``.

The fitted statistics live in the release folder (``ood.safetensors``, and the
thresholds in ``config.json`` under ``"screening"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

OOD_FILE = "ood.safetensors"
DEFAULTS = {"max_colourfulness": 0.08, "min_std": 4.0, "min_confidence": 0.70, "quantile": 0.99}


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok", "uncertain", "not_mri"
    reason: str
    distance: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class FeatureModel:
    means: torch.Tensor  # C x D
    precision: torch.Tensor  # D x D
    threshold: float

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Smallest Mahalanobis distance to a class mean, per row."""
        diff = features[:, None, :] - self.means[None]  # N x C x D
        d2 = torch.einsum("ncd,de,nce->nc", diff, self.precision, diff)
        return d2.clamp_min(0).min(dim=1).values.sqrt()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"means": self.means.contiguous(), "precision": self.precision.contiguous(),
                "threshold": torch.tensor([self.threshold])}

    @classmethod
    def load(cls, folder: str | Path) -> "FeatureModel | None":
        from safetensors.torch import load_file

        path = Path(folder) / OOD_FILE
        if not path.is_file():
            return None
        t = load_file(path)
        return cls(t["means"].double(), t["precision"].double(), float(t["threshold"][0]))


def fit_feature_model(train_features: torch.Tensor, train_labels: np.ndarray, val_features: torch.Tensor,
                      quantile: float = DEFAULTS["quantile"]) -> FeatureModel:
    from sklearn.covariance import LedoitWolf

    x = train_features.double().numpy()
    classes = sorted(set(train_labels.tolist()))
    means = np.stack([x[train_labels == c].mean(0) for c in classes])
    centred = x - means[np.searchsorted(classes, train_labels)]
    precision = LedoitWolf().fit(centred).precision_
    model = FeatureModel(torch.from_numpy(means), torch.from_numpy(precision), 0.0)
    model.threshold = float(np.quantile(model.distance(val_features.double()).numpy(), quantile))
    return model


def judge(probabilities: dict[str, float], *, colourfulness: float, pixel_std: float, distance: float | None,
          feature_threshold: float | None, settings: dict | None = None) -> Verdict:
    s = {**DEFAULTS, **(settings or {})}
    if colourfulness > s["max_colourfulness"]:
        return Verdict("not_mri", "This looks like a colour photograph or drawing, not an MRI slice.", distance)
    if pixel_std < s["min_std"]:
        return Verdict("not_mri", "The image is (nearly) blank: there is no slice to read.", distance)
    if distance is not None and feature_threshold is not None and distance > feature_threshold:
        return Verdict("not_mri", "This does not look like the brain MRI slices the model was trained on "
                                  f"(feature distance {distance:.1f} > {feature_threshold:.1f}).", distance)
    top = max(probabilities.values())
    if top < s["min_confidence"]:
        return Verdict("uncertain", f"The model is unsure (top probability {top:.0%} < {s['min_confidence']:.0%}).",
                       distance)
    return Verdict("ok", "", distance)
