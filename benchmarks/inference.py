"""Inference speed: the model call by runtime, predict, verdict, explain, int8; printed, never asserted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import testing_files, timed


def random_release(arch: str, image_size: int, folder: Path) -> Path:
    """A randomly initialised release folder (for speed only: its answers mean nothing)."""
    import torch

    from brainmri.inference.release import save_release
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes=4, image_size=image_size).eval()
    return save_release(model, folder / arch, ["glioma", "meningioma", "notumor", "pituitary"], content_crop=True)


def with_onnx(release: Path, workdir: Path, data: Path | None) -> Path:
    """``release`` with a checked ONNX export: itself when it has one, else an exported copy in ``workdir``."""
    from brainmri.inference.backends import onnx_problem
    from brainmri.inference.release import Release, read_config
    from brainmri.training.export import export_release, first_testing_inputs

    config = read_config(release)
    if onnx_problem(Release(Path(release), config)) is None:
        return release
    copy = workdir / f"{release.name}-onnx"
    shutil.copytree(release, copy)
    inputs = first_testing_inputs(copy, data, 64) if data and data.is_dir() else None
    export_release(copy, inputs)
    return copy


def gradcam_baseline(release: Path):
    """pytorch-grad-cam's default call: GradCAM on the last stage of an unfrozen model, whole backward, for the
    page's heatmap target."""
    from pytorch_grad_cam import GradCAM

    from brainmri.inference.explain import DEFAULT_TARGET, TARGETS
    from brainmri.inference.release import load_release
    from brainmri.training.model import target_layer

    model, _ = load_release(release)
    model.eval()

    def run(inputs, target: int):
        with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
            return cam(input_tensor=inputs, targets=[TARGETS[DEFAULT_TARGET](target)])[0]

    return run


def bench_model(
    release: Path,
    images: Path,
    repeats: int,
    workdir: Path,
    data: Path | None,
    limit: int | None = None,
    int8: bool = True,
) -> dict:
    import torch

    from brainmri import Predictor
    from brainmri.inference.backends import TorchBackend

    files = testing_files(images, limit)
    sample = files[len(files) // 2]
    raw = sample.read_bytes()
    exported = with_onnx(release, workdir, data)
    plain = Predictor.from_pretrained(exported, backend="torch")
    fast = Predictor.from_pretrained(exported, backend="auto")
    x = plain._inputs([plain.prepare(raw)])
    rows: dict[str, dict] = {}

    # 1. the model call alone
    rows["model call: torch fp32 eager"] = timed(lambda: plain.backend(x), repeats)
    channels_last = TorchBackend(plain.model.to(memory_format=torch.channels_last))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    rows["model call: torch fp32 channels_last"] = timed(lambda: channels_last(x_cl), repeats)
    plain.model.to(memory_format=torch.contiguous_format)
    rows["model call: onnxruntime fp32"] = timed(lambda: fast.backend(x), repeats)
    if int8:
        rows["model call: onnxruntime int8 (dynamic)"] = _int8_row(exported, workdir, x, plain, files, repeats)
        rows["model call: onnxruntime int8 (static, QDQ)"] = _int8_row(
            exported, workdir, x, plain, files, repeats, calibration=data
        )
    # 2. file bytes → probabilities
    rows["predict: torch fp32"] = timed(lambda: plain.predict(raw), repeats)
    rows["predict: onnxruntime"] = timed(lambda: fast.predict(raw), repeats)
    # 2b. file bytes → probabilities + the release's verdict (all its checks, test-time views where it asks)
    rows["predict+verdict: onnxruntime"] = timed(lambda: fast.screen(raw), repeats)
    # on a slice that looks T2-weighted, the verdict also asks the model about the slice with its contrast inverted
    check = fast.sequence_check
    looking = next(
        (f for f in files[:400] if check is not None and check.score(fast.prepare(f)) >= check.threshold), None
    )
    if looking is not None:
        raw_t2 = looking.read_bytes()
        rows["predict: onnxruntime, T2-looking slice"] = timed(lambda: fast.predict(raw_t2), repeats)
        rows["predict+verdict: onnxruntime, T2-looking slice"] = timed(lambda: fast.screen(raw_t2), repeats)
    # 3. predict + explain, against the library's default call
    baseline = gradcam_baseline(exported)
    target = int(np.argmax(list(plain.predict(raw).values())))
    rows["predict+explain: grad-cam default (torch)"] = timed(
        lambda: (plain.predict(raw), baseline(x, target)), repeats
    )
    rows["predict+explain: one pass, torch"] = timed(lambda: plain.explain(raw), repeats)
    rows["predict+explain: one pass, onnxruntime"] = timed(lambda: fast.explain(raw), repeats)
    reference = baseline(x, target)
    correlation = {
        name: float(np.corrcoef(p.explain(raw).heatmap.ravel(), reference.ravel())[0, 1])
        for name, p in (("torch", plain), ("onnxruntime", fast))
    }
    # 4. batch throughput and agreement over the whole folder
    batch = {}
    probabilities = {}
    for name, predictor in (("torch fp32", plain), ("onnxruntime", fast)):
        start = time.perf_counter()
        out = predictor.predict_batch(files, batch_size=32)
        seconds = time.perf_counter() - start
        probabilities[name] = np.array([list(p.values()) for p in out])
        batch[name] = {"images": len(files), "seconds": seconds, "img_s": len(files) / seconds}
    a, b = probabilities["torch fp32"], probabilities["onnxruntime"]
    agreement = {
        "images": len(files),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(a - b).max()),
    }

    base = rows["model call: torch fp32 eager"]["p50_ms"]
    for name, row in rows.items():
        if name.startswith("model call"):
            row["speedup_vs_eager"] = base / row["p50_ms"]
    rows["predict+verdict: onnxruntime"]["ratio_to_predict"] = (
        rows["predict+verdict: onnxruntime"]["p50_ms"] / rows["predict: onnxruntime"]["p50_ms"]
    )
    if "predict+verdict: onnxruntime, T2-looking slice" in rows:
        rows["predict+verdict: onnxruntime, T2-looking slice"]["ratio_to_predict"] = (
            rows["predict+verdict: onnxruntime, T2-looking slice"]["p50_ms"]
            / rows["predict: onnxruntime, T2-looking slice"]["p50_ms"]
        )
    rows["predict: onnxruntime"]["speedup_vs_torch"] = (
        rows["predict: torch fp32"]["p50_ms"] / rows["predict: onnxruntime"]["p50_ms"]
    )
    grad_default = rows["predict+explain: grad-cam default (torch)"]["p50_ms"]
    for name, predict_name in (("torch", "predict: torch fp32"), ("onnxruntime", "predict: onnxruntime")):
        row = rows[f"predict+explain: one pass, {name}"]
        row["speedup_vs_gradcam_default"] = grad_default / row["p50_ms"]
        row["ratio_to_predict"] = row["p50_ms"] / rows[predict_name]["p50_ms"]
        row["heatmap_correlation"] = correlation[name]
    batch["onnxruntime"]["speedup_vs_torch"] = batch["onnxruntime"]["img_s"] / batch["torch fp32"]["img_s"]
    config = plain.config
    return {
        "release": str(release),
        "arch": config["architecture"],
        "image_size": plain.preprocess.image_size,
        "backend_auto": fast.backend.name,
        "sample": sample.name,
        "latency": rows,
        "batch": batch,
        "agreement_onnx_vs_torch": agreement,
        "onnx_check": config.get("onnx", {}).get("check"),
    }


def _int8_row(exported: Path, workdir: Path, x, plain, files, repeats: int, calibration: Path | None = None) -> dict:
    """ONNX Runtime with int8 weights: speed, and agreement with fp32 on 256 files. Dynamic quantisation,
    or with ``calibration`` (a dataset root) static QDQ quantisation whose activation ranges come from
    32 of its Training images (never Testing)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return {"skipped": "onnxruntime.quantization unavailable"}
    from brainmri.inference.backends import INPUT, ONNX_FILE, OnnxBackend

    source = str(exported / ONNX_FILE)
    if calibration is None:
        path = workdir / f"{exported.name}-int8-dynamic.onnx"
        quantize_dynamic(source, str(path), weight_type=QuantType.QInt8)
    else:
        training = testing_files(Path(calibration) / "Training") if (Path(calibration) / "Training").is_dir() else []
        if not training:
            return {"skipped": "static quantisation needs DATA/Training images for calibration"}
        from brainmri.io.images import ImageLoadError

        samples = []
        for f in training[:: max(1, len(training) // 32)][:32]:
            try:
                samples.append({INPUT: plain._inputs([plain.prepare(f)]).numpy()})
            except ImageLoadError:
                continue  # the dataset's unreadable files are skipped here as everywhere else
        batches = iter(samples)

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(batches, None)

        prepared, path = workdir / f"{exported.name}-pre.onnx", workdir / f"{exported.name}-int8-static.onnx"
        quant_pre_process(source, str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    int8 = OnnxBackend(path)
    row = timed(lambda: int8(x), repeats)
    inputs = plain._inputs([plain.prepare(f) for f in files[:256]])
    ref = plain.probabilities(plain.backend(inputs)[0])
    got = plain.probabilities(int8(inputs)[0])
    row.update(
        top1_agreement_256=float((ref.argmax(1) == got.argmax(1)).mean()),
        max_prob_diff_256=float(np.abs(ref - got).max()),
    )
    return row
