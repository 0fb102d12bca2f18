"""Measurements that print figures (never asserts).

    python -m benchmarks.bench [all] [--model assets/model] [--images DATA/Testing] [--repeats 30] [--json FILE]
    python -m benchmarks.bench inference --model DIR ...   # one model's latency, explain and throughput rows
    python -m benchmarks.bench app --model DIR             # cold start to first answer, peak RSS after N requests
    python -m benchmarks.bench training --arch convnext_tiny --image-size 224

``all`` measures the given release folder and a randomly initialised convnext_tiny at 224 px (the
architecture the project ships where a GPU trained it), then the app and the training loop. Every
time is a median (and p95) over ``--repeats`` runs after a warm-up, and every speed-up is printed as a
ratio against its baseline measured in the same run:

- predict, one image: file bytes → probabilities through :class:`Predictor`; the model call alone
  for torch fp32 eager (the baseline), torch channels_last, ONNX Runtime fp32 and int8 (dynamic);
- predict + explain: the project's one-pass path against pytorch-grad-cam's default ``GradCAM`` call
  on the whole network (same image, same target), with the correlation of the two heatmaps;
- batch: img/s over the image folder, files → probabilities, torch and ONNX Runtime, with their top-1
  agreement and largest probability difference on every image;
- app: ``python app.py`` in a child process, seconds to the first ``/predict`` answer, the ``/predict``
  round trip as the page makes it (upload, queue, events, overlay image; :mod:`benchmarks.appserver`)
  and through ``gradio_client``, and the server's peak RSS (VmHWM) after N requests;
- volume: ``Predictor.predict_volume`` on a 150-slice NIfTI volume built from Testing slices;
- training: whole training loop vs the bare forward/backward/step, img/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.appserver import launch_app, status_mb, stop_app, wait_for_page

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "assets" / "model"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "brain-tumor-mri"


# ----------------------------------------------------------------------------- timing helpers


def timed(fn, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and p95 milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
        "repeats": repeats,
    }


def testing_files(images: Path, limit: int | None = None) -> list[Path]:
    from brainmri.data.folders import image_files

    files = image_files(images)
    return files[:limit] if limit else files


def machine() -> dict:
    import torch

    from brainmri.evaluation.modelcard import cpu_name

    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        info["bf16_onednn"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        info["bf16_onednn"] = None
    return info


# ----------------------------------------------------------------------------- one model


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
    """pytorch-grad-cam's default call: GradCAM on the last stage of an unfrozen model, whole backward."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from brainmri.inference.release import load_release
    from brainmri.training.model import target_layer

    model, _ = load_release(release)
    model.eval()

    def run(inputs, target: int):
        with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
            return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(target)])[0]

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


# ----------------------------------------------------------------------------- the app


def bench_app(
    model: Path,
    requests: int = 200,
    port: int = 7898,
    examples: Path = ROOT / "assets" / "examples",
    app_file: Path = ROOT / "app.py",
) -> dict:
    """Cold start of ``python app.py`` to its first /predict answer (as the page asks), the /predict round
    trip as the page makes it and through gradio_client, and the server's peak RSS after ``requests``
    answers of each."""
    from gradio_client import Client, handle_file

    files = sorted(p for p in examples.iterdir() if p.is_file())
    start = time.perf_counter()
    server = launch_app(model, port, app_file=app_file)
    try:
        page = wait_for_page(server, port)
        page.predict(files[0])
        cold = time.perf_counter() - start
        rss_start = status_mb(server.pid)
        page_ms, client_ms = [], []
        for i in range(requests):
            t = time.perf_counter()
            page.predict(files[i % len(files)])
            page_ms.append(1000 * (time.perf_counter() - t))
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for i in range(requests):
            t = time.perf_counter()
            client.predict(handle_file(str(files[i % len(files)])), api_name="/predict")
            client_ms.append(1000 * (time.perf_counter() - t))
        page.close()

        def p95(values):
            return sorted(values)[int(0.95 * (len(values) - 1))]

        return {
            "cold_start_s": cold,
            "requests": requests,
            "rss_after_first_mb": rss_start,
            "rss_after_requests_mb": status_mb(server.pid),
            "peak_rss_mb": status_mb(server.pid, "VmHWM"),
            "predict_round_trip_p50_ms": statistics.median(page_ms),
            "predict_round_trip_p95_ms": p95(page_ms),
            "gradio_client_round_trip_p50_ms": statistics.median(client_ms),
            "gradio_client_round_trip_p95_ms": p95(client_ms),
        }
    finally:
        stop_app(server)


# ----------------------------------------------------------------------------- whole scans


def bench_volume(
    release: Path, images: Path, workdir: Path, slices: int = 150, size: int = 256, repeats: int = 3
) -> dict:
    """``Predictor.predict_volume`` on a NIfTI volume of ``slices`` Testing slices at ``size`` px (read from
    the .nii.gz file each time: decompression, windowing, skipping, preprocessing, network, verdicts)."""
    import gzip

    import nibabel
    from PIL import Image

    from brainmri import Predictor

    files = testing_files(images, slices)
    stack = [np.asarray(Image.open(f).convert("L").resize((size, size))) for f in files]
    stack = (stack * (slices // max(1, len(stack)) + 1))[:slices]
    voxels = np.flip(np.swapaxes(np.stack(stack, axis=-1), 0, 1), axis=(0, 1)).astype(np.float32)
    path = workdir / "volume.nii.gz"
    path.write_bytes(gzip.compress(nibabel.Nifti1Image(np.ascontiguousarray(voxels), np.eye(4)).to_bytes(), 6))
    predictor = Predictor.from_pretrained(release)
    result = {}
    row = timed(lambda: result.update(r=predictor.predict_volume(path)), repeats, warmup=1)
    summary = result["r"].summary()
    return {
        "slices": slices,
        "size": size,
        "file_mb": path.stat().st_size / 2**20,
        "backend": predictor.backend.name,
        "read": summary["read"],
        "skipped": summary["skipped"],
        "p50_s": row["p50_ms"] / 1000,
        "p95_s": row["p95_ms"] / 1000,
        "repeats": repeats,
    }


# ----------------------------------------------------------------------------- training


def training_speed(
    data: str, arch: str, image_size: int, batch_size: int, steps: int, cache_dir=None, threads: int | None = None
) -> dict:
    from brainmri.training.trainer import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            TrainConfig(
                data=data,
                out=out,
                arch=arch,
                pretrained=False,
                image_size=image_size,
                batch_size=batch_size,
                recipe="scratch",
                epochs=2,
                cache_dir=cache_dir,
                threads=threads,
                steps_per_epoch=2,
            )
        )
        trainer.setup()
        trainer.train_one_epoch(0)  # warm-up: allocator, oneDNN kernels
        trainer.steps_per_epoch = steps
        loop = trainer.train_one_epoch(1)
        bare = trainer.bare_step_speed(steps + 1)
    return {
        "arch": arch,
        "image_size": image_size,
        "batch_size": batch_size,
        "steps": steps,
        "bf16": trainer.bf16,
        "loop_img_s": loop["train_img_s"],
        "bare_step_img_s": bare,
        "loop_vs_bare": loop["train_img_s"] / bare,
    }


# ----------------------------------------------------------------------------- printing


def print_model(result: dict) -> None:
    print(
        f"\n## {result['arch']} @ {result['image_size']} px  ({result['release']}; auto backend: "
        f"{result['backend_auto']})"
    )
    print(f"{'measurement':46s} {'p50 ms':>9s} {'p95 ms':>9s}  ratio")
    for name, row in result["latency"].items():
        if "p50_ms" not in row:
            print(f"{name:46s} {row.get('skipped', '')}")
            continue
        notes = []
        if "speedup_vs_eager" in row:
            notes.append(f"{row['speedup_vs_eager']:.2f}x vs eager")
        if "speedup_vs_torch" in row:
            notes.append(f"{row['speedup_vs_torch']:.2f}x vs torch")
        if "ratio_to_predict" in row and "speedup_vs_gradcam_default" not in row:
            notes.append(f"{row['ratio_to_predict']:.2f}x its predict")
        if "speedup_vs_gradcam_default" in row:
            notes.append(
                f"{row['speedup_vs_gradcam_default']:.2f}x vs grad-cam default, "
                f"{row['ratio_to_predict']:.2f}x its predict, heatmap r={row['heatmap_correlation']:.4f}"
            )
        if "top1_agreement_256" in row:
            notes.append(
                f"top-1 agreement {row['top1_agreement_256']:.4f}, max dp {row['max_prob_diff_256']:.4f} (256 files)"
            )
        print(f"{name:46s} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f}  {'; '.join(notes)}")
    for name, row in result["batch"].items():
        extra = f"  {row['speedup_vs_torch']:.2f}x vs torch" if "speedup_vs_torch" in row else ""
        print(f"batch, files → probabilities: {name:16s} {row['img_s']:8.1f} img/s over {row['images']} files{extra}")
    a = result["agreement_onnx_vs_torch"]
    print(
        f"onnxruntime vs torch fp32 on {a['images']} files: top-1 agreement {a['top1_agreement']:.4f}, "
        f"largest probability difference {a['max_prob_diff']:.2e}"
    )
    if result.get("onnx_check"):
        c = result["onnx_check"]
        print(f"ONNX export check: {c['images']} images, largest logit difference {c['max_abs_logit_diff']:.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", default=None, help="also write the figures to this file")
    common.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: all cores)")

    def model_options(p):
        p.add_argument("--model", default=str(DEFAULT_MODEL), help="release folder")
        p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root (for the export check)")
        p.add_argument("--images", default=None, help="image folder for throughput (default DATA/Testing)")
        p.add_argument("--limit", type=int, default=None, help="first N images only")
        p.add_argument("--repeats", type=int, default=30)
        p.add_argument("--no-int8", dest="int8", action="store_false")

    p = sub.add_parser("all", parents=[common], help="both models, the app and the training loop (default)")
    model_options(p)
    p.add_argument("--tiny-arch", default="convnext_tiny")
    p.add_argument("--tiny-size", type=int, default=224)
    p.add_argument("--app-requests", type=int, default=200)
    p.add_argument("--training-steps", type=int, default=6)
    p.add_argument("--skip", nargs="*", default=[], choices=["reference", "app", "volume", "training"])
    p = sub.add_parser("inference", parents=[common], help="one release folder's latency and throughput")
    model_options(p)
    p = sub.add_parser("app", parents=[common], help="app cold start, round trip and peak RSS")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--app", default=str(ROOT / "app.py"), help="the app.py to serve (another checkout's, to compare)")
    p.add_argument("--requests", type=int, default=200)
    p = sub.add_parser("volume", parents=[common], help="predict_volume on a 150-slice NIfTI volume")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--slices", type=int, default=150)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("training", parents=[common], help="training loop vs bare step, img/s")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--arch", default="convnext_tiny")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--cache-dir", default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("all", "inference", "app", "volume", "training", "-h", "--help"):
        argv = ["all", *argv]
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"machine": machine(), "command": " ".join(["python -m benchmarks.bench", *argv])}
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="brainmri-bench-") as tmp:
        work = Path(tmp)
        if args.what in ("all", "inference"):
            data = Path(args.data)
            images = Path(args.images) if args.images else data / "Testing"
            result["models"] = [bench_model(Path(args.model), images, args.repeats, work, data, args.limit, args.int8)]
            print_model(result["models"][-1])
            if args.what == "all" and "reference" not in args.skip:
                reference = random_release(args.tiny_arch, args.tiny_size, work)
                result["models"].append(bench_model(reference, images, args.repeats, work, data, args.limit, args.int8))
                print_model(result["models"][-1])
        if args.what == "app" or (args.what == "all" and "app" not in args.skip):
            model = Path(args.model)
            result["app"] = bench_app(
                model,
                args.requests if args.what == "app" else args.app_requests,
                app_file=Path(getattr(args, "app", ROOT / "app.py")),
            )
            a = result["app"]
            print(
                f"\napp: cold start {a['cold_start_s']:.1f} s to the first /predict answer; peak RSS "
                f"{a['peak_rss_mb']:.0f} MB after {a['requests']} more requests (RSS {a['rss_after_first_mb']:.0f} → "
                f"{a['rss_after_requests_mb']:.0f} MB); /predict round trip as the page makes it p50 "
                f"{a['predict_round_trip_p50_ms']:.0f} ms, p95 {a['predict_round_trip_p95_ms']:.0f} ms; through "
                f"gradio_client p50 {a['gradio_client_round_trip_p50_ms']:.0f} ms, "
                f"p95 {a['gradio_client_round_trip_p95_ms']:.0f} ms"
            )
        if args.what == "volume" or (args.what == "all" and "volume" not in args.skip):
            v = result["volume"] = bench_volume(
                Path(args.model),
                Path(args.data) / "Testing",
                work,
                getattr(args, "slices", 150),
                getattr(args, "size", 256),
                getattr(args, "repeats", 3) if args.what == "volume" else 3,
            )
            print(
                f"\nvolume: {v['slices']} slices of {v['size']} px ({v['file_mb']:.1f} MB .nii.gz, {v['read']} read, "
                f"{v['skipped']} skipped) in {v['p50_s']:.2f} s p50 ({v['p95_s']:.2f} s p95) on {v['backend']}"
            )
        if args.what == "training" or (args.what == "all" and "training" not in args.skip):
            if args.what == "training":
                specs = [(args.arch, args.image_size, args.batch_size, args.steps)]
            else:
                from brainmri.inference.release import read_config

                cfg = read_config(args.model)
                specs = [
                    (cfg["architecture"], int(cfg["pretrained_cfg"]["input_size"][-1]), 64, args.training_steps),
                    (args.tiny_arch, args.tiny_size, 32, args.training_steps),
                ]
            result["training"] = []
            for arch, size, batch, steps in specs:
                r = training_speed(args.data, arch, size, batch, steps, getattr(args, "cache_dir", None), args.threads)
                result["training"].append(r)
                print(
                    f"training {r['arch']} @ {r['image_size']} px, batch {r['batch_size']}, {r['steps']} steps: "
                    f"loop {r['loop_img_s']:.2f} img/s, bare step {r['bare_step_img_s']:.2f} img/s "
                    f"({100 * r['loop_vs_bare']:.0f} %)"
                )
    result["wall_s"] = round(time.time() - start, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
