#!/usr/bin/env python
"""Load test of the app on loopback: N concurrent gradio_client users, bounded in count and time.

    python scripts/load_test.py --clients 16 --requests 25 [--model assets/model] [--port 7899]

Starts the app in a child process on 127.0.0.1, sends the example slices round-robin, and reports
success rate, p50/p95/max latency, queue rejections, wrong answers, and the server's RSS over time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.appserver import start_app, stop_app  # noqa: E402
from benchmarks.appserver import status_mb as rss_mb  # noqa: E402  (after the path above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument(
        "--cleanup",
        default="10,10",
        help="BRAINMRI_CACHE_CLEANUP for the server: 'every,age' seconds (the app's default is 300,600)",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    gradio_temp = Path(tempfile.mkdtemp(prefix="brainmri-load-gradio-"))  # the server's cache, watched below
    (ROOT / "runs").mkdir(exist_ok=True)
    log_path = ROOT / "runs" / "load_server.log"
    log = open(log_path, "w")
    try:
        server, _ = start_app(
            args.model,
            args.port,
            stdout=log,
            timeout=120,
            env={"GRADIO_TEMP_DIR": str(gradio_temp), "BRAINMRI_CACHE_CLEANUP": args.cleanup},
        )
    except RuntimeError as err:
        print(err)
        return 1
    url = f"http://127.0.0.1:{args.port}/"
    examples = sorted((ROOT / "assets" / "examples").glob("*"))
    expected = {p: p.name.split("-")[0] for p in examples}

    def cached_files() -> set[Path]:
        return {p for p in gradio_temp.rglob("*") if p.is_file()}

    static = cached_files()  # the Model tab's figures, copied into the cache at start-up
    latencies, errors, rejections, wrong = [], [], 0, 0
    rss = [(0, rss_mb(server.pid))]
    done = 0
    lock = threading.Lock()
    stop = time.time() + args.time_limit

    def user(index: int) -> None:
        nonlocal rejections, wrong, done
        client = Client(url, verbose=False)
        for i in range(args.requests):
            if time.time() > stop:
                return
            path = examples[(index + i) % len(examples)]
            start = time.perf_counter()
            try:
                label = client.predict(handle_file(str(path)), api_name="/predict")[0]
                with lock:
                    latencies.append(time.perf_counter() - start)
                    wrong += label.get("label") != expected[path]
            except Exception as err:
                with lock:
                    if "queue" in str(err).lower() and "full" in str(err).lower():
                        rejections += 1
                    else:
                        errors.append(str(err)[:200])
            with lock:
                done += 1
                if done % 50 == 0:
                    rss.append((done, rss_mb(server.pid)))

    started = time.time()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - started
    rss.append((done, rss_mb(server.pid)))
    left_at_end = len(cached_files() - static)
    every, age = (float(v) for v in args.cleanup.split(","))
    waited = time.time()
    while cached_files() - static and time.time() - waited < every + age + 30:
        time.sleep(1)
    left_after_cleanup = sorted(str(p.relative_to(gradio_temp)) for p in cached_files() - static)
    waited = time.time() - waited
    stop_app(server)
    left_after_exit = sorted(str(p.relative_to(gradio_temp)) for p in cached_files())
    shutil.rmtree(gradio_temp, ignore_errors=True)

    log.close()
    problems = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if any(word in line for word in ("Traceback", "ERROR", "Error", "Exception", "error:"))
    ]
    total = args.clients * args.requests
    ordered = sorted(latencies)
    at = {n: mb for n, mb in rss}
    result = {
        "clients": args.clients,
        "requests": total,
        "answered": len(latencies),
        "wrong_class": wrong,
        "queue_rejections": rejections,
        "errors": len(errors),
        "error_samples": errors[:3],
        "success_rate": len(latencies) / total,
        "wall_s": round(wall, 1),
        "latency_s": {
            "p50": statistics.median(ordered),
            "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "max": ordered[-1],
        }
        if ordered
        else None,
        "rss_mb": rss,
        "rss_growth_100_to_400_mb": (at.get(400, float("nan")) - at.get(100, float("nan"))),
        "server_log_error_lines": len(problems),
        "server_log_samples": problems[:5],
        "cache_files_made_by_requests_at_end": left_at_end,
        "cache_files_left_after_cleanup": len(left_after_cleanup),
        "cleanup_wait_s": round(waited, 1),
        "cache_files_left_after_exit": len(left_after_exit),
        "left_samples": (left_after_cleanup + left_after_exit)[:5],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if not errors and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
