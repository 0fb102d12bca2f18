"""The app as served (cold start, page round trip, memory) and whole scans; printed, never asserted."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.appserver import launch_app, status_mb, stop_app, wait_for_page
from benchmarks.common import ROOT, testing_files, timed


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
