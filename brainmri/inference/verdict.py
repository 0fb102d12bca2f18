"""Is this a brain MRI slice the model can speak about, and is the model sure?

Ten checks, in the order :func:`judge` runs them (cheapest first), each with a plain-language reason
(in English and French: :mod:`brainmri.text`, keyed by the verdict's ``code``):

1. **Colour** (``colour``): MRI slices are gray; a source whose pixels differ between RGB
   channels by more than ``max_colourfulness`` on average is a photograph or a drawing, not a scan.
2. **Blank** (``blank``): almost no contrast (std of the model input < ``min_std``).
3. **No dark background** (``no_background``): an MRI slice shows the head on a dark background;
   fewer than ``min_dark_border`` of the pixels in the image's outer 6 % ring darker than 15 % of its
   99th percentile means a photograph, a page or noise.
4. **Noise** (``noise``): more than ``max_jump_share`` of neighbouring pixel pairs (on a 256-px
   thumbnail) differ by more than half the range: noise or a synthetic pattern.
5. **No head** (``no_head``): the largest connected bright region (after a small closing, on a 128-px
   thumbnail) covers less than ``min_head_share`` of the image: separate bright patches, not one head.
6. **Unfamiliar** (``unfamiliar``): the Mahalanobis distance of the model's pooled features to the
   nearest class centre (Lee et al., 2018), with class means and a shrunk shared covariance fitted on
   the training split. The threshold is the ``quantile`` of validation-split distances, so about 1 % of
   genuine slices are flagged; anything farther is "not like the slices the model learned from".
7. **Other sequence** (``sequence``, DICOM only): the header's series description, protocol or
   sequence name says T2, FLAIR, STIR, diffusion, SWI or proton density (and no T1): "uncertain",
   whatever the scores.
8. **Looks T2-weighted** (``looks_t2_notumor``, ``looks_t2_flip``; releases with a fitted
   :class:`brainmri.inference.sequence_check.SequenceCheck`): the pixels look T2-weighted (bright fluid) and either the
   answer is "no tumour" (in the training data nearly every T2 slice is "no tumour", so that answer is
   what the bias gives; a release can switch this half off, ``t2_notumor``) or the answer changes when
   the slice's contrast is turned over to look like T1 (:func:`brainmri.inference.sequence_check.invert_inside_head`).
8b. **Looks like FLAIR** (``looks_flair``; releases with a fitted
   :class:`brainmri.inference.sequence_check.FeatureLook`): the network's features look like FLAIR and the
   answer is a class the model has never seen on FLAIR (a model trained with TCGA-LGG has seen gliomas and
   tumour-free slices in FLAIR, no meningioma or pituitary tumour).
9. **Unsure** (``unsure``): top calibrated probability below ``min_confidence`` (the release's, fitted by
   ``calibration.confidence_for_ok``, else 0.90).
10. **Unstable** (``unstable``, when the release sets ``min_agreement``): the mean probability of the
   predicted class over the slice and its test-time views (mirror, gamma 0.7 and 1.4, blur;
   :data:`brainmri.inference.preprocess.TEST_TIME_VIEWS`) below ``min_agreement``: small changes move the answer.

Checks 1–6 give "not_mri" (no tumour label is shown), 7–10 "uncertain".

The fitted statistics live in the release folder (``ood.safetensors``, and the
thresholds in ``config.json`` under ``"screening"``). How each threshold was chosen, and what it flags on genuine
slices: docs/record/abstention.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from brainmri import text

OOD_FILE = "ood.safetensors"
DEFAULTS = {
    "max_colourfulness": 0.08,
    "min_std": 4.0,
    "min_dark_border": 0.40,
    "min_head_share": 0.15,
    "max_jump_share": 0.05,
    "min_confidence": 0.90,
    "quantile": 0.99,
}


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok", "uncertain", "not_mri"
    code: str = ""  # which check decided (a key of the catalogue's [reasons], brainmri.text); "" for "ok"
    params: dict = field(default_factory=dict)  # the figures its reason quotes
    distance: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """The reason in English (:meth:`reason_in` for another language)."""
        return self.reason_in("en")

    def reason_in(self, lang: str) -> str:
        return text.reason(self.code, self.params, lang)

    def said_in(self, lang: str) -> str:
        """The status and its reason in one line, as the page, the batch table, the report and the Teach tab show a
        verdict that is not "ok" ("uncertain: The model is unsure ...")."""
        return text.t("verdict.line", lang, status=text.status_name(self.status, lang), reason=self.reason_in(lang))


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
        return {
            "means": self.means.contiguous(),
            "precision": self.precision.contiguous(),
            "threshold": torch.tensor([self.threshold]),
        }

    @classmethod
    def load(cls, folder: str | Path) -> "FeatureModel | None":
        from safetensors.torch import load_file

        path = Path(folder) / OOD_FILE
        if not path.is_file():
            return None
        t = load_file(path)
        return cls(t["means"].double(), t["precision"].double(), float(t["threshold"][0]))


def fit_feature_model(
    train_features: torch.Tensor,
    train_labels: np.ndarray,
    val_features: torch.Tensor,
    quantile: float = DEFAULTS["quantile"],
) -> FeatureModel:
    from sklearn.covariance import LedoitWolf

    x = train_features.double().numpy()
    classes = sorted(set(train_labels.tolist()))
    means = np.stack([x[train_labels == c].mean(0) for c in classes])
    centred = x - means[np.searchsorted(classes, train_labels)]
    precision = LedoitWolf().fit(centred).precision_
    model = FeatureModel(torch.from_numpy(means), torch.from_numpy(precision), 0.0)
    model.threshold = float(np.quantile(model.distance(val_features.double()).numpy(), quantile))
    return model


def dark_border_fraction(gray: np.ndarray) -> float:
    """Share of the outer ring's pixels that are background-dark (see check 3)."""
    height, width = gray.shape
    band = max(2, int(0.06 * min(height, width)))
    ring = np.concatenate([gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()])
    return float((ring < 0.15 * max(1.0, float(np.percentile(gray, 99)))).mean())


def largest_bright_region(gray: np.ndarray, fill_holes: bool = False) -> np.ndarray:
    """The largest connected region brighter than a tenth of the image's 99th percentile, after a small
    closing (holes filled if asked): the head, on an MRI slice. All False when nothing is bright."""
    from scipy import ndimage

    g = np.asarray(gray, dtype=np.float32)
    bright = ndimage.binary_closing(g > 0.1 * max(float(np.percentile(g, 99)), 1.0), iterations=2)
    if fill_holes:
        bright = ndimage.binary_fill_holes(bright)
    labels, count = ndimage.label(bright)
    if not count:
        return np.zeros(g.shape, dtype=bool)
    return labels == (np.bincount(labels.ravel())[1:].argmax() + 1)


def _thumbnail(gray: np.ndarray, side: int, resample: int, dtype) -> np.ndarray:
    """``gray`` resized so that its longer side is ``side`` pixels."""
    from PIL import Image

    image = Image.fromarray(gray)
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, resample), dtype=dtype)


def head_share(gray: np.ndarray) -> float:
    """Share of the image covered by its largest connected bright region (see check 5), on a 128-px thumbnail."""
    from PIL import Image

    return float(largest_bright_region(_thumbnail(gray, 128, Image.BILINEAR, np.float32)).mean())


def jump_share(gray: np.ndarray) -> float:
    """Share of neighbouring pixel pairs that differ by more than 128 grey levels (see check 3)."""
    from PIL import Image

    small = _thumbnail(gray, 256, Image.NEAREST, np.int16)
    steps = np.concatenate([np.abs(np.diff(small, axis=0)).ravel(), np.abs(np.diff(small, axis=1)).ravel()])
    return float((steps > 128).mean()) if steps.size else 0.0


def judge(
    probabilities: dict[str, float],
    *,
    colourfulness: float,
    pixel_std: float,
    distance: float | None,
    feature_threshold: float | None,
    settings: dict | None = None,
    dark_border: float = 1.0,
    agreement: float | None = None,
    head: float = 1.0,
    jumps: float = 0.0,
    sequence: str | None = None,
    t2_look: float | None = None,
    inverted: str | None = None,
    t2_notumor: bool = True,
    flair_look: float | None = None,
    flair_classes: tuple[str, ...] = (),
) -> Verdict:
    """The first failed check decides (see the module's list). ``t2_look``: the appearance check's score when
    the slice looks T2-weighted (None when it does not, or the release has no check); ``inverted``: the
    model's answer on the slice with its contrast turned over; ``t2_notumor``: whether a "no tumour" answer
    on a T2-looking slice is "uncertain" whatever the inverted slice says; ``flair_look``: the FLAIR check's score
    when the slice looks like FLAIR (None otherwise), ``flair_classes``: the classes the model has seen on FLAIR."""
    s = {**DEFAULTS, **(settings or {})}
    top = max(probabilities.values())
    predicted = max(probabilities, key=probabilities.get)
    t2 = t2_look is not None
    checks = [  # (failed, status, code, params), cheapest first; the first failed check decides
        (colourfulness > s["max_colourfulness"], "not_mri", "colour", {}),
        (pixel_std < s["min_std"], "not_mri", "blank", {}),
        (dark_border < s["min_dark_border"], "not_mri", "no_background", {}),
        (jumps > s.get("max_jump_share", 1.0), "not_mri", "noise", {}),
        (head < s.get("min_head_share", 0.0), "not_mri", "no_head", {}),
        (
            distance is not None and feature_threshold is not None and distance > feature_threshold,
            "not_mri",
            "unfamiliar",
            {"distance": distance, "threshold": feature_threshold},
        ),
        (bool(sequence), "uncertain", "sequence", {"sequence": sequence}),
        (t2 and t2_notumor and predicted == "notumor", "uncertain", "looks_t2_notumor", {"score": t2_look}),
        (
            t2 and inverted is not None and inverted != predicted,
            "uncertain",
            "looks_t2_flip",
            {"score": t2_look, "inverted_class": inverted},
        ),
        (
            flair_look is not None and predicted not in flair_classes,
            "uncertain",
            "looks_flair",
            {"score": flair_look, "answer_class": predicted},
        ),
        (top < s["min_confidence"], "uncertain", "unsure", {"top": top, "threshold": s["min_confidence"]}),
        (
            s.get("min_agreement") is not None and agreement is not None and agreement < s["min_agreement"],
            "uncertain",
            "unstable",
            {"agreement": agreement, "threshold": s.get("min_agreement")},
        ),
    ]
    for failed, status, code, params in checks:
        if failed:
            return Verdict(status, code, params, distance)
    return Verdict("ok", distance=distance)
