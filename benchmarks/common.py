"""What every benchmark shares: where things are, a timer giving p50/p95, the machine's description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

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
