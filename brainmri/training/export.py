"""ONNX export of a release folder, checked against torch before it is kept.

The exported graph takes the normalised ``B x 3 x H x W`` batch and returns two
outputs: ``logits`` (before the temperature) and ``features``, the last feature
map. The features let :class:`brainmri.inference.predictor.Predictor` draw Grad-CAM and
screen inputs from the same ONNX Runtime pass (only the small classifier head
is re-run in torch for the gradients). The file goes into the release folder as
``model.onnx``, with its sha256 and the sha256 of the weights it came from in
``config.json``, so a stale or damaged export is never used.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from brainmri.inference.backends import INPUT, ONNX_FILE, OUTPUTS, LogitsAndFeatures, OnnxBackend, TorchBackend
from brainmri.inference.release import WEIGHTS, add_files, load_release, sha256_file

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The export could not be made, or does not reproduce torch's outputs."""


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, image_size: int, *, opset: int = 18) -> Path:
    """Write ``model`` (eval mode, fp32) as a single-file ONNX graph with a dynamic batch size."""
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so plainly)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the onnx and onnxscript packages ({err.name} is missing): "
            "pip install -r requirements.txt"
        ) from None
    path = Path(path)
    wrapper = LogitsAndFeatures(model.float().eval()).eval()
    example = torch.zeros(2, 3, image_size, image_size)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            verbose=False,
        )
    program.save(str(path), external_data=False)
    return path


def compare(reference: TorchBackend, onnx: OnnxBackend, inputs: torch.Tensor, batch_size: int = 16) -> dict[str, float]:
    """Largest absolute differences between torch and ONNX Runtime on ``inputs``."""
    logits_diff = features_diff = 0.0
    agree = 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size]
        (logits, features), (onnx_logits, onnx_features) = reference(x), onnx(x)
        logits_diff = max(logits_diff, float((onnx_logits - logits).abs().max()))
        features_diff = max(features_diff, float((onnx_features - features).abs().max()))
        agree += int((onnx_logits.argmax(1) == logits.argmax(1)).sum())
    return {
        "images": len(inputs),
        "max_abs_logit_diff": logits_diff,
        "max_abs_feature_diff": features_diff,
        "top1_agreement": agree / max(len(inputs), 1),
    }


def first_testing_inputs(folder: str | os.PathLike, data: str | os.PathLike, count: int = 64) -> torch.Tensor:
    """The first ``count`` Testing images of ``data`` (class folders in order, files sorted), through the
    release's own preprocessing: the inputs the export is checked on."""
    from brainmri.data.folders import list_classes, list_files, split_roots
    from brainmri.inference.preprocess import Preprocess
    from brainmri.inference.release import read_config
    from brainmri.io.images import load_image

    preprocess = Preprocess.from_release_config(read_config(folder))
    _, root = split_roots(data)
    files = [root / rel for rel, _ in list_files(root, list_classes(root))][:count]
    return preprocess.to_tensor([preprocess.fit(load_image(f).gray) for f in files])


def export_release(
    folder: str | os.PathLike, check_inputs: torch.Tensor | None = None, *, tolerance: float = 1e-4, opset: int = 18
) -> dict[str, Any]:
    """Export a release folder's model to ``model.onnx`` inside it, after checking the export.

    ``check_inputs`` (normalised batches; random ones when None) go through torch and ONNX Runtime; the
    export is refused when any logit differs by more than ``tolerance``.
    """
    model, release = load_release(folder)
    folder, config = release.folder, release.config
    size = int(config["pretrained_cfg"]["input_size"][-1])
    if check_inputs is None:
        check_inputs = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=folder.parent) as staging:
        path = export_onnx(model, Path(staging) / ONNX_FILE, size, opset=opset)
        check = compare(TorchBackend(model), OnnxBackend(path), check_inputs)
        log.info("ONNX export vs torch: %s", check)
        if check["max_abs_logit_diff"] > tolerance:
            raise ExportError(
                f"the ONNX export differs from torch by {check['max_abs_logit_diff']:.2e} "
                f"(> {tolerance:g}) on {check['images']} images; not kept"
            )
        record = {
            "file": ONNX_FILE,
            "opset": opset,
            "weights_sha256": sha256_file(folder / WEIGHTS),
            "outputs": list(OUTPUTS),
            "check": check,
            "tolerance": tolerance,
        }
        add_files(folder, {ONNX_FILE: path}, {"onnx": record})
    return record
