"""An hour of traffic: does the app grow? ``python -m benchmarks.bench soak --minutes 60 --clients 4``.

Starts ``python app.py`` on loopback and has ``clients`` threads send, in turn, the requests a page makes: predict,
a re-explanation with another class and method (the page's own event, through the queue), every class's heatmap, a
case report, a batch of slices and a small volume. Each client is a visitor who opens the page, sends ``visit``
requests under that page view's session (as a browser tab does) and opens it again: the server keeps the state of
every page view until its session capacity, so page views, not requests, are what fill it.

Every answer is reduced to a fingerprint (labels and probabilities, the pixels of every image, the PDF's text without
its date) and compared with the first answer to the same request: a different one is cross-talk or drift. Every
``every`` minutes it prints the server's resident memory, its open file descriptors (by kind), the page views
opened, the files in Gradio's cache, p50/p95 latency and the errors; after the last request it waits for the cache
to fall back to its floor. Resident memory is also sampled every 10 s, and each window's median compared (growth
apart from the working memory of the requests in flight at one reading). Figures are printed and saved, never
asserted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.appserver import PageClient, launch_app, status_mb, stop_app
from benchmarks.common import DEFAULT_MODEL, ROOT


def open_files(pid: int) -> dict[str, int]:
    """The server's open file descriptors by kind: sockets, pipes, files (by folder: the cache's or another), other."""
    kinds: dict[str, int] = {}
    try:
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return kinds
    for target in targets:
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        if kind == "file" and "brainmri-soak-" in target:
            kind = "cache file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _pixels(path: str) -> str:
    from PIL import Image

    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()[:16]


def _pdf_text(path: str) -> str:
    from pypdf import PdfReader

    lines = [line for page in PdfReader(path).pages for line in page.extract_text().splitlines()]
    dated = re.compile(r"\(UTC\)")  # the report's date line ("Made ... (UTC)."), the one part meant to differ
    return " | ".join(line for line in lines if not dated.search(line))


def fingerprint(value) -> object:
    """What must not change between two answers to the same request: numbers rounded, files by their content."""
    if isinstance(value, dict):
        if "path" in value or "url" in value:
            return fingerprint(value.get("path") or value.get("url"))
        return {k: fingerprint(v) for k, v in value.items() if k not in ("url", "orig_name", "size", "meta")}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, str) and os.path.isfile(value):
        suffix = Path(value).suffix.lower()
        if suffix in (".png", ".jpg", ".jpeg", ".webp"):
            return _pixels(value)
        if suffix == ".pdf":
            return _pdf_text(value)
        if suffix == ".csv":
            return hashlib.sha256(Path(value).read_bytes()).hexdigest()[:16]
        return suffix
    return value


def _difference(first, then) -> str:
    """Where two fingerprints part, in a few words (for the record of a differing answer)."""
    import difflib

    a, b = str(first), str(then)
    changes = [d for d in difflib.ndiff(a.split(), b.split()) if d[:1] in "+-"]
    return " ".join(changes[:12])[:300]


def small_volume(folder: Path) -> Path:
    """A NIfTI volume of the example slices, 8 slices at 128 px."""
    import nibabel
    from PIL import Image

    slices = [np.asarray(Image.open(p).convert("L").resize((128, 128))) for p in sorted(examples())] * 2
    voxels = np.flip(np.swapaxes(np.stack(slices, axis=-1), 0, 1), axis=(0, 1)).astype(np.float32)
    path = folder / "volume.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(voxels), np.eye(4)), path)
    return path


def examples() -> list[Path]:
    return sorted((ROOT / "assets" / "examples").glob("*"))


def redraw_index(config: dict, upload_id: int) -> int:
    """The page's re-explanation event: upload, class, method, opacity, outline in; overlay, pair, note out."""
    for dependency in config["dependencies"]:
        if len(dependency["inputs"]) == 5 and dependency["inputs"][0] == upload_id and len(dependency["outputs"]) == 3:
            return dependency["id"]
    raise RuntimeError("the page has no re-explanation event")


def soak(
    model=DEFAULT_MODEL,
    minutes: float = 60,
    clients: int = 4,
    every: float = 5,
    port: int = 7911,
    cleanup: str = "300,600",
    visit: int = 12,
    log=print,
) -> dict:
    from gradio_client import Client, handle_file

    cache = Path(tempfile.mkdtemp(prefix="brainmri-soak-"))
    work = Path(tempfile.mkdtemp(prefix="brainmri-soak-inputs-"))
    server = launch_app(model, port, env={"GRADIO_TEMP_DIR": str(cache), "BRAINMRI_CACHE_CLEANUP": cleanup})
    url = f"http://127.0.0.1:{port}/"
    started = time.time()
    while True:
        try:
            page = PageClient(url)
            break
        except Exception:
            if server.poll() is not None or time.time() - started > 180:
                stop_app(server)
                raise RuntimeError("the app did not start") from None
            time.sleep(0.2)
    config = page.http.get(url + "config").json()
    predict = next(d for d in config["dependencies"] if d.get("api_name") == "predict")
    redraw = redraw_index(config, predict["inputs"][0])
    slices, volume = examples(), small_volume(work)
    labels = ["predicted", "glioma", "meningioma", "notumor", "pituitary"]

    def requests(client: Client, page: PageClient, turn: int):
        """The request of this turn: (its key, a function giving its answer)."""
        image = slices[turn % len(slices)]
        kind = turn % 6
        if kind == 0:
            return ("predict", image.name), lambda: client.predict(handle_file(str(image)), api_name="/predict")
        if kind == 1:
            target, method = labels[turn % len(labels)], ("gradcam++", "eigencam", "gradcam")[turn % 3]
            return ("redraw", image.name, target, method), lambda: page.call(
                redraw, [page.upload(image), target, method, 0.45, True]
            )
        if kind == 2:
            method = ("gradcam", "eigencam")[turn % 2]
            return ("all", image.name, method), lambda: client.predict(
                handle_file(str(image)), method, api_name="/explain_all"
            )
        if kind == 3:
            return ("report", image.name), lambda: client.predict(handle_file(str(image)), api_name="/report")
        if kind == 4:
            return ("batch",), lambda: client.predict([handle_file(str(p)) for p in slices], api_name="/predict_batch")
        return ("volume",), lambda: client.predict([handle_file(str(volume))], "axial", api_name="/predict_volume")

    first: dict = {}
    latencies: list[float] = []
    errors: list[str] = []
    differing: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + minutes * 60

    views, retries = [0], [0]  # page views; requests the page clients sent again
    patience = {"httpx_kwargs": {"timeout": 60}}  # gradio_client's default is httpx's 5 s

    def user(index: int) -> None:
        client, own, turn = None, None, index
        while time.time() < stop_at:
            if own is None or (turn - index) % visit == 0:  # a new page view: its own session for both clients
                if own is not None:
                    own.close()
                    with lock:
                        retries[0] += own.retries
                    own = None
                try:  # a browser waits for a page as long as for an answer
                    client = Client(url, verbose=False, download_files=str(work / f"client-{index}"), **patience)
                    own = PageClient(url)
                except Exception as err:  # counted; the visitor tries again
                    with lock:
                        errors.append(f"page: {str(err)[:160]}")
                    time.sleep(1)
                    continue
                with lock:
                    views[0] += 1
            key, ask = requests(client, own, turn)
            turn += 1
            start = time.perf_counter()
            try:
                answer = fingerprint(ask())
            except Exception as err:  # counted and shown: the server's message, not a traceback
                with lock:
                    errors.append(f"{key[0]}: {str(err)[:160]}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                if key not in first:
                    first[key] = answer
                elif first[key] != answer:
                    differing.append(f"{key}: {_difference(first[key], answer)}")
        if own is not None:
            own.close()
            with lock:
                retries[0] += own.retries

    def cached() -> int:
        return sum(1 for p in cache.rglob("*") if p.is_file())

    floor = cached()  # the Model tab's figures, copied in at start
    rows = []

    def row(label: str) -> dict:
        files = open_files(server.pid)
        with lock:
            done = sorted(latencies)
            figures = {
                "at": label,
                "minutes": round((time.time() - t0) / 60, 1),
                "rss_mb": round(status_mb(server.pid), 1),
                "page_views": views[0],
                "open_files": sum(files.values()),
                "open_by_kind": files,
                "cache_files": cached(),
                "requests": len(done),
                "p50_s": round(statistics.median(done), 3) if done else None,
                "p95_s": round(done[int(0.95 * (len(done) - 1))], 3) if done else None,
                "errors": len(errors),
                "differing": len(differing),
            }
        rows.append(figures)
        log(" ".join(f"{k}={v}" for k, v in figures.items()))
        return figures

    t0 = time.time()
    row("start")
    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    samples: list[tuple[float, float]] = []  # (minutes, resident MB) every 10 s: growth apart from one request's
    next_row = t0 + every * 60
    while time.time() < stop_at:
        time.sleep(min(10.0, max(0.0, stop_at - time.time())))
        samples.append((round((time.time() - t0) / 60, 2), round(status_mb(server.pid), 1)))
        if time.time() >= next_row or time.time() >= stop_at:
            row("traffic")
            next_row += every * 60
    for thread in threads:
        thread.join(timeout=120)
    row("last request")
    every_s, age_s = (float(v) for v in cleanup.split(","))
    quiet = time.time()
    while cached() > floor and time.time() - quiet < every_s + age_s + 60:
        time.sleep(10)
    after = row("cache swept")
    stop_app(server)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    traffic = [r for r in rows if r["at"] == "traffic"]
    base = next((r["rss_mb"] for r in traffic if r["minutes"] >= 5), rows[0]["rss_mb"])
    windows = {}  # the median resident memory of each `every`-minute window of the 10-s samples
    for minute, mb in samples:
        windows.setdefault(int(minute // every), []).append(mb)
    medians = {f"{k * every:g}-{(k + 1) * every:g}": statistics.median(v) for k, v in sorted(windows.items())}
    after_5 = [m for k, m in zip(sorted(windows), medians.values()) if k * every >= 5]
    return {
        "rss_samples": samples,
        "rss_window_medians": medians,
        "rss_median_growth_after_5_min": round(after_5[-1] / after_5[0] - 1, 4) if len(after_5) > 1 else None,
        "minutes": minutes,
        "clients": clients,
        "requests_per_page_view": visit,
        "cleanup": cleanup,
        "rows": rows,
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "client_retries": retries[0],  # requests sent again after a dropped kept-alive connection (as browsers do)
        "differing_answers": len(differing),
        "differing_samples": differing[:5],
        "rss_growth_after_5_min": round(max(r["rss_mb"] for r in traffic) / base - 1, 4) if traffic else None,
        "cache_floor": floor,
        "cache_after_sweep": after["cache_files"],
        "seconds_to_floor": round(time.time() - quiet, 1),
    }
