#!/usr/bin/env python
"""Load test of the app on loopback: N concurrent gradio_client users, bounded in count and time.

    python scripts/load_test.py --clients 16 --requests 25 [--model assets/model] [--port 7899]

Starts the app in a child process on 127.0.0.1, sends the example slices round-robin, and reports
success rate, p50/p95/max latency, queue rejections, wrong answers, and the server's RSS over time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument("--model", default=str(ROOT / "assets" / "model"))
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    env = {**os.environ, "BRAINMRI_MODEL": args.model, "BRAINMRI_PORT": str(args.port), "BRAINMRI_HOST": "127.0.0.1"}
    log = open(ROOT / "runs" / "load_server.log", "w") if (ROOT / "runs").is_dir() else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}/"
    examples = sorted((ROOT / "assets" / "examples").glob("*"))
    expected = {p: p.name.split("-")[0] for p in examples}
    deadline = time.time() + 120
    while True:
        try:
            Client(url, verbose=False)
            break
        except Exception:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                print("the server did not start")
                return 1
            time.sleep(1)

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
    server.terminate()
    server.wait(timeout=30)

    total = args.clients * args.requests
    ordered = sorted(latencies)
    at = {n: mb for n, mb in rss}
    result = {
        "clients": args.clients, "requests": total, "answered": len(latencies), "wrong_class": wrong,
        "queue_rejections": rejections, "errors": len(errors), "error_samples": errors[:3],
        "success_rate": len(latencies) / total, "wall_s": round(wall, 1),
        "latency_s": {"p50": statistics.median(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))],
                      "max": ordered[-1]} if ordered else None,
        "rss_mb": rss,
        "rss_growth_100_to_400_mb": (at.get(400, float("nan")) - at.get(100, float("nan"))),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
