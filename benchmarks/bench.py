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
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import DEFAULT_DATA, DEFAULT_MODEL, ROOT, machine
from benchmarks.inference import bench_model, random_release
from benchmarks.serving import bench_app, bench_volume
from benchmarks.training import training_speed

# ----------------------------------------------------------------------------- one model


# ----------------------------------------------------------------------------- the app


# ----------------------------------------------------------------------------- whole scans


# ----------------------------------------------------------------------------- training


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
    p = sub.add_parser("soak", parents=[common], help="an hour of the page's requests: memory, files, answers")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--every", type=float, default=5, help="minutes between printed rows")
    p.add_argument("--cleanup", default="300,600", help="the server's BRAINMRI_CACHE_CLEANUP (the app's default)")
    p.add_argument("--port", type=int, default=7911)
    p.add_argument("--visit", type=int, default=12, help="requests a visitor sends before opening the page again")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("all", "inference", "app", "volume", "training", "soak", "-h", "--help"):
        argv = ["all", *argv]
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"machine": machine(), "command": " ".join(["python -m benchmarks.bench", *argv])}
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="brainmri-bench-") as tmp:
        work = Path(tmp)
        if args.what == "soak":
            from benchmarks.soak import soak

            result["soak"] = soak(
                args.model, args.minutes, args.clients, args.every, args.port, args.cleanup, args.visit
            )
            s = result["soak"]
            print(
                f"soak: {s['requests']} requests, {s['errors']} errors, {s['differing_answers']} answers unlike the "
                f"first, RSS growth after 5 min {s['rss_growth_after_5_min']} (window medians: "
                f"{s['rss_median_growth_after_5_min']}), cache {s['cache_after_sweep']} files "
                f"(floor {s['cache_floor']}) {s['seconds_to_floor']} s after the last request"
            )
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
