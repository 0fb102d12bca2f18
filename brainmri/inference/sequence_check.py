"""Does a slice look T2-weighted (bright fluid)? A check from the pixels the model sees.

In this dataset the sequence gives the class away: in a hand-labelled random sample of 399 Training slices
(``assets/sequence-labels.csv``), 66 of 207 "no tumour" slices were T2-weighted and none of 192 tumour
slices (figshare's are contrast-enhanced T1, SARTAJ's almost all T1 too). A model can therefore learn
"T2 ⇒ no tumour", and call a tumour on a T2 slice "no tumour" with confidence. This module recognises the
T2 look so that the verdict can say so (:func:`brainmri.inference.verdict.judge`, check ``looks_t2``).

How: twelve statistics of the intensities inside the head, away from its rim (scalp and skull), of the
model's own input (:meth:`brainmri.inference.preprocess.Preprocess.fit`; one preprocessing path): percentiles,
skewness, bright and dark shares, mean, spread, and the rim's brightness against the interior. In T2
the fluid (ventricles, sulci) is the brightest thing inside the brain and the interior histogram leans
dark with a bright tail; in T1 the fluid is the darkest and the scalp's fat the brightest. A logistic
regression on them (scikit-learn, fitted on the labelled sample by ``train.py sequence-check``) gives
the probability that the slice looks T2-weighted; its coefficients live in the release's
``config.json`` under ``"sequence_check"``.

The second half of the check is :func:`invert_inside_head`: the slice with its tissue contrast turned
over (T2 → T1-like, background left black), on which the model's answer is asked again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

FEATURE_NAMES = (
    "p5",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "skewness",
    "bright_share",
    "dark_share",
    "mean",
    "std",
    "rim_over_interior",
)
CONFIG_KEY = "sequence_check"


def head_and_interior(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head (the screening's largest bright region, holes filled) and its interior: the head eroded by a
    fifth of its equivalent radius, which leaves out the scalp and the skull."""
    from scipy import ndimage

    from brainmri.inference.verdict import largest_bright_region

    head = largest_bright_region(gray, fill_holes=True)
    radius = np.sqrt(head.sum() / np.pi)
    interior = ndimage.binary_erosion(head, iterations=max(1, int(0.2 * radius)))
    if interior.sum() < 50:  # a thin or tiny head: use all of it
        interior = head
    return head, interior


def interior_features(fitted: np.ndarray) -> np.ndarray:
    """The twelve statistics (:data:`FEATURE_NAMES`) of a model input (uint8 square)."""
    from scipy import stats

    g = np.asarray(fitted, dtype=np.float32)
    head, interior = head_and_interior(g)
    if not interior.any():
        return np.zeros(len(FEATURE_NAMES))
    scale = max(float(np.percentile(g[interior], 99)), 1.0)
    values = np.clip(g[interior] / scale, 0, 1)
    rim = head & ~interior
    rim_level = float(g[rim].mean() / scale) if rim.any() else 0.0
    skew = float(stats.skew(values)) if values.std() > 0 else 0.0
    return np.array(
        [
            *np.percentile(values, [5, 10, 25, 50, 75, 90]),
            skew,
            (values > 0.7).mean(),
            (values < 0.3).mean(),
            values.mean(),
            values.std(),
            rim_level,
        ],
        dtype=np.float64,
    )


INVERSION = "contrast inversion (T2-like)"  # the name of invert_inside_head as a shift in robustness tables


def invert_inside_head(gray: np.ndarray) -> np.ndarray:
    """T1 ↔ T2-like contrast: invert the tissue, keep the background black (uint8 in, uint8 out)."""
    mask = np.asarray(Image.fromarray((gray > 15).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    return np.where(mask, 255 - gray, 0).astype(np.uint8)


@dataclass(frozen=True)
class LogisticLook:
    """A fitted look of a slice: standardisation, logistic coefficients and the decision threshold, kept in a
    release's ``config.json``; :class:`SequenceCheck` (T2, on intensity statistics) and :class:`FeatureLook`
    (FLAIR, on the network's pooled features) add what they decide with it."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Probability of the look for rows of features."""
        z = (np.atleast_2d(np.asarray(features, dtype=np.float64)) - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.coef) + self.intercept)))

    def to_config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @staticmethod
    def _fitted_values(block: dict[str, Any]) -> dict[str, Any]:
        """The base fields of a saved look, as the constructor takes them."""
        return {
            "mean": tuple(block["mean"]),
            "scale": tuple(block["scale"]),
            "coef": tuple(block["coef"]),
            "intercept": float(block["intercept"]),
            "threshold": float(block.get("threshold", 0.5)),
            "fitted_on": block.get("fitted_on", ""),
            "cross_validation": block.get("cross_validation"),
        }


@dataclass(frozen=True)
class SequenceCheck(LogisticLook):
    """A fitted T2-look check on :func:`interior_features`."""

    notumor_uncertain: bool = True  # a "no tumour" answer on a T2-looking slice is "uncertain" (screening check 8)
    fitted_on: str = ""
    cross_validation: dict | None = None

    def score(self, fitted: np.ndarray) -> float:
        return float(self.scores(interior_features(fitted))[0])

    def to_config(self) -> dict[str, Any]:
        return {"features": list(FEATURE_NAMES), **super().to_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "SequenceCheck | None":
        """From a release's ``config.json`` (None when it has no check, or one of other features)."""
        block = (config or {}).get(CONFIG_KEY)
        if not block or tuple(block.get("features", ())) != FEATURE_NAMES:
            return None
        return cls(**cls._fitted_values(block), notumor_uncertain=bool(block.get("notumor_uncertain", True)))


def fit_sequence_check(
    features: np.ndarray,
    is_t2: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    C: float = 1.0,
    threshold: float = 0.5,
    folds: int = 5,
    repeats: int = 5,
    fitted_on: str = "",
    notumor_uncertain: bool = True,
    random_rows: np.ndarray | None = None,
) -> SequenceCheck:
    """Fit the check on labelled rows of :func:`interior_features`; its cross-validated figures (AUC, and
    at ``threshold`` the share of T2 slices caught and of other slices flagged; per ``groups``, e.g. the
    class, the share flagged) are kept with it. ``random_rows``: which rows were drawn at random (the others
    chosen, e.g. slices an earlier check flagged); the same figures on those rows alone are reported too,
    since figures on chosen rows say little about slices in general."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    is_t2 = np.asarray(is_t2, dtype=bool)
    if is_t2.all() or not is_t2.any():
        raise ValueError("the labels need both T2 and other slices")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
    folds = min(folds, int(is_t2.sum()), int((~is_t2).sum()))
    scores = np.mean(
        [
            cross_val_predict(
                pipeline,
                features,
                is_t2,
                method="predict_proba",
                cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            )[:, 1]
            for seed in range(repeats)
        ],
        axis=0,
    )
    flagged = scores >= threshold
    report = {"folds": folds, "repeats": repeats, **_caught(scores, is_t2, threshold, "t2")}
    if random_rows is not None and not np.asarray(random_rows, dtype=bool).all():
        rows = np.asarray(random_rows, dtype=bool)
        report["random_sample"] = _caught(scores[rows], is_t2[rows], threshold, "t2")
    if groups is not None:
        report["flagged_by_group"] = _share_by(flagged, groups)
    return SequenceCheck(*_fitted(pipeline, features, is_t2), threshold, notumor_uncertain, fitted_on, report)


def _caught(scores: np.ndarray, positive: np.ndarray, threshold: float, name: str) -> dict[str, Any]:
    """How cross-validated ``scores`` separate the ``positive`` slices (the ``name`` look) from the others."""
    from sklearn.metrics import roc_auc_score

    flagged = scores >= threshold
    return {
        "n": int(len(positive)),
        name: int(positive.sum()),
        "auc": float(roc_auc_score(positive, scores)),
        f"{name}_caught": float(flagged[positive].mean()),
        "others_flagged": float(flagged[~positive].mean()),
    }


def _share_by(flagged: np.ndarray, groups) -> dict[str, float]:
    groups = np.asarray(groups)
    return {str(g): float(flagged[groups == g].mean()) for g in np.unique(groups)}


def _fitted(pipeline, features: np.ndarray, labels: np.ndarray) -> tuple:
    """Fit the scaler + logistic regression pipeline; its standardisation and coefficients as plain numbers."""
    pipeline.fit(features, labels)
    scaler, logistic = pipeline[0], pipeline[1]
    return (
        tuple(map(float, scaler.mean_)),
        tuple(map(float, scaler.scale_)),
        tuple(map(float, logistic.coef_[0])),
        float(logistic.intercept_[0]),
    )


FLAIR_KEY = "flair_check"


@dataclass(frozen=True)
class FeatureLook(LogisticLook):
    """Does a slice look like FLAIR? A logistic regression on the network's own pooled features (the intensity
    statistics above cannot tell FLAIR from T1: docs/record/abstention.md), fitted on TCGA-LGG's labelled sequences
    by ``train.py flair-check`` and kept in the release's ``config.json`` under ``"flair_check"``.
    ``classes_seen``: the classes the model has seen on FLAIR slices; an answer outside them on a FLAIR-looking
    slice is "uncertain" (verdict code ``looks_flair``)."""

    classes_seen: tuple[str, ...] = ("glioma", "notumor")
    fitted_on: str = ""
    cross_validation: dict | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, width: int | None = None) -> "FeatureLook | None":
        """From a release's ``config.json`` (None without one, or one fitted on features of another width)."""
        block = (config or {}).get(FLAIR_KEY)
        if not block or (width is not None and len(block["coef"]) != width):
            return None
        return cls(**cls._fitted_values(block), classes_seen=tuple(block.get("classes_seen", ("glioma", "notumor"))))


def fit_feature_look(
    features: np.ndarray,
    positive: np.ndarray,
    patients: np.ndarray,
    *,
    C: float = 0.1,
    threshold: float = 0.5,
    folds: int = 5,
    classes_seen=("glioma", "notumor"),
    fitted_on: str = "",
    kinds: np.ndarray | None = None,
) -> FeatureLook:
    """Fit the FLAIR look on labelled rows of pooled features; cross-validated with every patient's slices in one
    fold (AUC; at ``threshold`` the share of FLAIR slices caught and of the others flagged, and per ``kinds``, e.g.
    each source and class, the share flagged)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ValueError("the labels need both FLAIR and other slices")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
    folds = max(2, min(folds, len(set(np.asarray(patients).tolist()))))
    scores = cross_val_predict(
        pipeline,
        features,
        positive,
        groups=patients,
        method="predict_proba",
        cv=StratifiedGroupKFold(folds, shuffle=True, random_state=0),
    )[:, 1]
    flagged = scores >= threshold
    report = {"folds": folds, **_caught(scores, positive, threshold, "flair")}
    if kinds is not None:
        report["flagged_by_kind"] = _share_by(flagged, kinds)
    return FeatureLook(*_fitted(pipeline, features, positive), threshold, tuple(classes_seen), fitted_on, report)
