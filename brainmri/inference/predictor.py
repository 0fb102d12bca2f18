"""Predictor: a release folder loaded once, answering predict / predict_batch / explain / screen.

Every input goes through the same path as training and evaluation:
:func:`brainmri.io.images.load_grayscale` → :class:`brainmri.inference.preprocess.Preprocess`
(from the release folder's ``pretrained_cfg``) → network body → ``softmax(logits / T)``
with the temperature ``T`` stored in ``config.json``. The body runs on the backend
:func:`brainmri.inference.backends.select_backend` picks (ONNX Runtime when the release carries
a checked export, else fp32 torch); one body pass gives the logits, the features for
screening and, through the classifier head alone, the Grad-CAM heatmap.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numpy as np
import torch

from brainmri.inference.backends import select_backend
from brainmri.inference.explain import feature_maps_cams, overlay
from brainmri.inference.explanation import Explanation, _attach_original
from brainmri.inference.preprocess import TEST_TIME_VIEWS, Preprocess
from brainmri.inference.release import Release, load_release
from brainmri.inference.scan_result import SliceResult, VolumeResult
from brainmri.inference.sequence_check import FeatureLook, SequenceCheck, interior_features, invert_inside_head
from brainmri.inference.verdict import FeatureModel, Verdict, dark_border_fraction, head_share, judge, jump_share
from brainmri.io.images import ImageLoadError, ImageSource, LoadedImage, load_image

MIN_HEAD_OF_VOLUME = 0.35  # a slice showing less head than this share of the volume's widest is skipped


class Predictor:
    def __init__(
        self, model: torch.nn.Module, release: Release, *, device: str | torch.device = "cpu", backend: str = "auto"
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # Nothing in the model is trained here; Grad-CAM needs the gradient of the feature map only.
        self.model.requires_grad_(False)
        self.release = release
        self.labels: list[str] = release.labels
        self.temperature = release.temperature
        self.preprocess = Preprocess.from_release_config({**release.config, "pretrained_cfg": model.pretrained_cfg})
        self.backend = select_backend(self.model, release, "torch" if self.device.type != "cpu" else backend)
        self.feature_model = FeatureModel.load(release.folder)
        self.screening = release.screening
        self.sequence_check = SequenceCheck.from_config(release.config)
        self.flair_check = FeatureLook.from_config(release.config, getattr(self.model, "num_features", None))

    @property
    def config(self) -> dict:
        """The release's config.json (read only: :attr:`release` is the loaded release)."""
        return self.release.config

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        expected_labels: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        backend: str = "auto",
    ) -> "Predictor":
        """Load a release folder or Hub id (``hf-hub:user/repo``), verifying its sha256 and labels.

        ``backend``: ``auto`` (ONNX Runtime when the release has a checked ``model.onnx``, else torch),
        ``onnx`` or ``torch`` (the fp32 reference)."""
        model, release = load_release(name_or_path, list(expected_labels) if expected_labels else None)
        return cls(model, release, device=device, backend=backend)

    # -- preprocessing
    def prepare(self, image: ImageSource) -> np.ndarray:
        """Any supported input → the uint8 square the model sees."""
        return self._read(image)[1]

    def _read(self, image: ImageSource) -> tuple[LoadedImage, np.ndarray]:
        """The decoded input (screening looks at it) and what the model sees."""
        return self._read_with_box(image)[:2]

    def _read_with_box(self, image: ImageSource) -> tuple[LoadedImage, np.ndarray, tuple[int, int, int, int]]:
        """:meth:`_read` and the crop box, found once (a heatmap is mapped back onto the original through it)."""
        loaded = load_image(image)
        box = self.preprocess.box(loaded.gray)
        return loaded, self.preprocess.fit(loaded.gray, box), box

    def _read_or_error(self, image: ImageSource) -> tuple[LoadedImage, np.ndarray] | ImageLoadError:
        try:
            return self._read(image)
        except ImageLoadError as err:
            return err

    def _inputs(self, fitted: list[np.ndarray]) -> torch.Tensor:
        return self.preprocess.to_tensor(fitted).to(self.device)

    def _to_dict(self, probs: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}

    # -- inference
    def logits(self, fitted: list[np.ndarray] | np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """Raw logits for prepared images (before temperature)."""
        return self.logits_and_features(fitted, batch_size)[0]

    def logits_and_features(self, fitted, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and pooled pre-logit features of the same forward pass."""
        logits, features = [], []
        for start in range(0, len(fitted), batch_size):
            batch_logits, feature_map = self.backend(self._inputs(list(fitted[start : start + batch_size])))
            features.append(self._pooled(feature_map).cpu())
            logits.append(batch_logits.cpu())
        if not logits:
            return torch.zeros(0, len(self.labels)), torch.zeros(0)
        return torch.cat(logits), torch.cat(features)

    def _pooled(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The head's pooled pre-logit features (what screening measures distances on)."""
        with torch.no_grad():
            return self.model.forward_head(feature_map.to(self.device), pre_logits=True).float()

    @property
    def min_confidence(self) -> float:
        """The top probability below which the verdict answers "uncertain" (the release's, else the default)."""
        from brainmri.inference.verdict import DEFAULTS

        return float(self.screening.get("min_confidence", DEFAULTS["min_confidence"]))

    @functools.cached_property
    def heatmap_grid(self) -> tuple[int, int]:
        """The cells of the feature map every heatmap is drawn from (7×7 for a 112-px input at stride 16), read off
        one forward pass of a blank input."""
        size = self.preprocess.image_size
        _, feature_map = self.backend(self._inputs([np.zeros((size, size), np.uint8)]))
        return tuple(int(v) for v in feature_map.shape[-2:])

    def view_probabilities(self, fitted, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Calibrated probabilities on each test-time view (:data:`~brainmri.inference.preprocess.TEST_TIME_VIEWS`)
        of prepared images; all views of a chunk go through the network as one batch."""
        out: dict[str, list[np.ndarray]] = {name: [] for name in TEST_TIME_VIEWS}
        step = max(1, batch_size // len(TEST_TIME_VIEWS))
        for start in range(0, len(fitted), step):
            chunk = np.stack([np.asarray(f, dtype=np.uint8) for f in fitted[start : start + step]])
            batch = torch.from_numpy(chunk).unsqueeze(1).float().div_(255)
            views = torch.cat([view(batch).clamp(0, 1) for view in TEST_TIME_VIEWS.values()])
            logits, _ = self.backend(self.preprocess.normalize(views).to(self.device))
            probs = self.probabilities(logits.cpu()).reshape(len(TEST_TIME_VIEWS), len(chunk), -1)
            for name, p in zip(TEST_TIME_VIEWS, probs):
                out[name].append(p)
        return {
            name: np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels))) for name, chunks in out.items()
        }

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return torch.softmax(logits.float() / self.temperature, dim=-1).numpy()

    def predict(self, image: ImageSource) -> dict[str, float]:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Iterable[ImageSource], batch_size: int = 32) -> list[dict[str, float]]:
        """Decoding and preprocessing run on a thread per core (Pillow and numpy release the GIL), then
        the network sees whole batches; the first unreadable input raises its ImageLoadError."""
        fitted = self._map(self.prepare, list(images))
        return [self._to_dict(p) for p in self.probabilities(self.logits(fitted, batch_size))]

    def explain(self, image: ImageSource, target: str | int | None = None, method: str = "gradcam") -> Explanation:
        """Probabilities, heatmap and overlay of one forward pass; ``target`` defaults to the predicted class."""
        loaded, fitted, box = self._read_with_box(image)
        return self.explain_prepared(fitted, target, method, loaded=loaded, box=box)

    def explain_prepared(
        self, fitted: np.ndarray, target: str | int | None = None, method: str = "gradcam", loaded=None, box=None
    ) -> Explanation:
        """``explain`` for an image already through :meth:`prepare` (e.g. from the data cache); the
        screening verdict needs the original (``loaded``) and is left out without it; ``box``: the crop box of
        ``loaded``, when known."""
        if isinstance(target, str):
            if target not in self.labels:
                raise ValueError(f"unknown class {target!r}; the model knows {self.labels}")
            target = self.labels.index(target)
        _, feature_map = self.backend(self._inputs([fitted]))
        result = feature_maps_cams(
            self.model, feature_map.to(self.device), None if target is None else [target], fitted.shape[:2], method
        )
        probs = self.probabilities(result.logits)[0]
        index = int(np.argmax(probs)) if target is None else int(target)
        heatmap = result.heatmaps[0]
        probabilities = self._to_dict(probs)
        explanation = Explanation(probabilities, self.labels[index], heatmap, overlay(fitted, heatmap), fitted, method)
        if loaded is not None:
            explanation.verdict = self._verdict_one(probs, loaded, fitted, feature_map)
            _attach_original(explanation, self.preprocess, loaded.gray, box)
        return explanation

    def _verdict_one(self, probs: np.ndarray, loaded, fitted: np.ndarray, feature_map) -> Verdict:
        """The verdict on one explained image (its probabilities and body feature map already computed)."""
        agreement = self.agreement([fitted], probs[None])[0] if self._uses_agreement else None
        return self._judge(
            self._to_dict(probs), loaded, fitted, self._pooled(feature_map), agreement, t2=self.t2_looks([fitted])[0]
        )

    @property
    def _uses_agreement(self) -> bool:
        return self.screening.get("min_agreement") is not None

    def agreement(self, fitted: list[np.ndarray], probs: np.ndarray) -> np.ndarray:
        """Mean probability of each image's predicted class (from ``probs``, its calibrated probabilities)
        over it and its test-time views: low when small changes move the answer."""
        rows, predicted = np.arange(len(probs)), probs.argmax(1)
        views = self.view_probabilities(fitted)
        return np.mean([probs[rows, predicted]] + [v[rows, predicted] for v in views.values()], axis=0)

    def t2_looks(self, fitted: list[np.ndarray]) -> list[tuple[float | None, str | None]]:
        """For each prepared image that looks T2-weighted (the release's :class:`SequenceCheck`), its score
        and the model's answer on the image with its contrast turned over (one batch for all of them);
        ``(None, None)`` for the others, and for every image when the release has no check."""
        out: list[tuple[float | None, str | None]] = [(None, None)] * len(fitted)
        check = self.sequence_check
        if check is None or not len(fitted):
            return out
        scores = check.scores(np.stack([interior_features(f) for f in fitted]))
        looking = np.flatnonzero(scores >= check.threshold)
        if len(looking):
            inverted = self.probabilities(self.logits([invert_inside_head(np.asarray(fitted[i])) for i in looking]))
            for i, p in zip(looking, inverted):
                out[i] = (float(scores[i]), self.labels[int(p.argmax())])
        return out

    def explain_all(self, image: ImageSource, method: str = "gradcam") -> list[Explanation]:
        """One explanation per class, from a single body pass (the teaching view: why this class and not that
        one), in label order; the verdict is the same for all and is computed once."""
        loaded, fitted, box = self._read_with_box(image)
        _, feature_map = self.backend(self._inputs([fitted]))
        features = feature_map.to(self.device).expand(len(self.labels), *feature_map.shape[1:])
        result = feature_maps_cams(self.model, features, list(range(len(self.labels))), fitted.shape[:2], method)
        probs = self.probabilities(result.logits[:1])[0]
        probabilities = self._to_dict(probs)
        verdict = self._verdict_one(probs, loaded, fitted, feature_map)
        out = []
        for index, heatmap in enumerate(result.heatmaps):
            e = Explanation(
                probabilities, self.labels[index], heatmap, overlay(fitted, heatmap), fitted, method, verdict
            )
            _attach_original(e, self.preprocess, loaded.gray, box)
            out.append(e)
        return out

    def _judge(
        self,
        probabilities,
        loaded,
        fitted: np.ndarray,
        features,
        agreement: float | None = None,
        head: float | None = None,
        t2: tuple[float | None, str | None] = (None, None),
    ) -> Verdict:
        """``head``: the slice's head share when the caller has measured it already (a volume's skipping);
        ``t2``: the slice's :meth:`t2_looks` entry."""
        distance = threshold = flair = None
        if self.feature_model is not None and features is not None:
            distance = float(self.feature_model.distance(features.double().cpu())[0])
            threshold = self.feature_model.threshold
        if self.flair_check is not None and features is not None:
            score = float(self.flair_check.scores(features.double().cpu().numpy())[0])
            flair = score if score >= self.flair_check.threshold else None
        return judge(
            probabilities,
            colourfulness=loaded.colourfulness,
            pixel_std=float(fitted.std()),
            distance=distance,
            feature_threshold=threshold,
            settings=self.screening,
            dark_border=dark_border_fraction(loaded.gray),
            agreement=agreement,
            head=head_share(loaded.gray) if head is None else head,
            jumps=jump_share(loaded.gray),
            sequence=loaded.sequence,
            t2_look=t2[0],
            inverted=t2[1],
            t2_notumor=self.sequence_check.notumor_uncertain if self.sequence_check else False,
            flair_look=flair,
            flair_classes=self.flair_check.classes_seen if self.flair_check else (),
        )

    def screen(self, image: ImageSource) -> tuple[dict[str, float], Verdict]:
        """Probabilities and the screening verdict, without a heatmap."""
        result = self.screen_batch([image])[0]
        if isinstance(result, ImageLoadError):
            raise result
        return result

    def screen_batch(
        self, images: Iterable[ImageSource], batch_size: int = 32
    ) -> list[tuple[dict[str, float], Verdict] | ImageLoadError]:
        """``screen`` for many inputs: loading on a thread per core, then whole batches through the network.
        An unreadable input gives its ImageLoadError in its place instead of stopping the others."""
        loaded = self._map(self._read_or_error, list(images))
        readable = [item for item in loaded if not isinstance(item, ImageLoadError)]
        logits, features = self.logits_and_features([fitted for _, fitted in readable], batch_size)
        probs = self.probabilities(logits)
        agreements = (
            self.agreement([fitted for _, fitted in readable], probs)
            if self._uses_agreement and readable
            else [None] * len(readable)
        )
        t2s = self.t2_looks([fitted for _, fitted in readable])
        answers = iter(zip(readable, probs, features, agreements, t2s))
        results = []
        for item in loaded:
            if isinstance(item, ImageLoadError):
                results.append(item)
                continue
            (image, fitted), p, feature, agreement, t2 = next(answers)
            probabilities = self._to_dict(p)
            results.append((probabilities, self._judge(probabilities, image, fitted, feature[None], agreement, t2=t2)))
        return results

    def predict_volume(self, source, plane: str = "axial", every: int = 1, batch_size: int = 32) -> VolumeResult:
        """Per-slice probabilities and verdicts for a scan (:func:`brainmri.io.volumes.load_volume`: a DICOM
        series, a multi-frame DICOM or a NIfTI volume, or a loaded :class:`~brainmri.io.volumes.Volume`), every
        ``every``-th slice. Slices with little of the head in them (the top and bottom of the scan: less than
        ``MIN_HEAD_OF_VOLUME`` of the widest slice's head share, or blank) are marked skipped. Each read
        slice goes through exactly the single-image path, in batches."""
        from brainmri.inference.verdict import DEFAULTS
        from brainmri.io.volumes import Volume, load_volume

        if every < 1:
            raise ValueError("every must be at least 1")
        volume = source if isinstance(source, Volume) else load_volume(source, plane)
        indices = list(range(0, len(volume), every))
        shares = self._map(lambda i: head_share(volume.slices[i]), indices)
        floor = max(self.screening.get("min_head_share", DEFAULTS["min_head_share"]), MIN_HEAD_OF_VOLUME * max(shares))
        results, read, read_shares = [], [], []
        for i, share in zip(indices, shares):
            if volume.slices[i].std() < self.screening.get("min_std", DEFAULTS["min_std"]):
                results.append(SliceResult(i, skipped="blank"))
            elif share < floor:
                results.append(SliceResult(i, skipped="too little of the head"))
            else:
                results.append(SliceResult(i))
                read.append(results[-1])
                read_shares.append(share)
        loaded = [LoadedImage(volume.slices[s.index], 0.0, volume.sequence) for s in read]
        fitted = self._map(lambda image: self.preprocess.fit(image.gray), loaded)
        logits, features = self.logits_and_features(fitted, batch_size)
        probs = self.probabilities(logits)
        agreements = self.agreement(fitted, probs) if self._uses_agreement and read else [None] * len(read)
        t2s = self.t2_looks(fitted)
        verdicts = self._map(
            lambda k: self._judge(
                self._to_dict(probs[k]),
                loaded[k],
                fitted[k],
                features[k][None],
                agreements[k],
                head=read_shares[k],
                t2=t2s[k],
            ),
            list(range(len(read))),
        )
        for k, result in enumerate(read):
            result.probabilities, result.verdict = self._to_dict(probs[k]), verdicts[k]
        return VolumeResult(volume, results, list(self.labels))

    @staticmethod
    def _map(function, items: list) -> list:
        """``map`` on a thread per core (Pillow and numpy release the GIL); in order."""
        workers = min(len(items), torch.get_num_threads())
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(function, items))
        return [function(item) for item in items]
