"""Start ``python app.py`` in a child process and talk to it as the page does (benchmark and load test).

:class:`PageClient` speaks the browser's protocol over one keep-alive HTTP connection: upload the file,
join the queue, read the server-sent events until the answer, then fetch the overlay image the page
shows. ``gradio_client`` does the same work but polls its message queue every 50 ms
(``gradio_client.utils.stream_sse_v1plus``), which adds 50 to 100 ms to every answer that the page's
own JavaScript client does not wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.common import ROOT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def status_mb(pid: int, key: str = "VmRSS") -> float:
    """A process's memory figure from /proc (VmRSS now, VmHWM peak) in MB; NaN when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def launch_app(
    model: str | Path,
    port: int,
    *,
    env: dict | None = None,
    stdout=subprocess.DEVNULL,
    app_file: str | Path = ROOT / "app.py",
) -> subprocess.Popen:
    """``python app.py`` (``app_file``: another checkout's, to compare versions) serving ``model`` on
    127.0.0.1:``port`` (not yet answering)."""
    env = {
        **os.environ,
        **(env or {}),
        "BRAINMRI_MODEL": str(model),
        "BRAINMRI_PORT": str(port),
        "BRAINMRI_HOST": "127.0.0.1",
    }
    app_file = Path(app_file).resolve()
    return subprocess.Popen(
        [sys.executable, str(app_file)], env=env, cwd=app_file.parent, stdout=stdout, stderr=subprocess.STDOUT
    )


def start_app(
    model: str | Path, port: int, *, env: dict | None = None, stdout=subprocess.DEVNULL, timeout: float = 180
):
    """``python app.py`` in a child process on 127.0.0.1:``port``; returns (process, gradio_client.Client)
    once the page answers. The caller stops it with :func:`stop_app`."""
    from gradio_client import Client

    start = time.perf_counter()
    server = launch_app(model, port, env=env, stdout=stdout)
    while True:
        if server.poll() is not None or time.perf_counter() - start > timeout:
            stop_app(server)
            raise RuntimeError("the app did not start")
        try:
            return server, Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            time.sleep(0.1)


def wait_for_page(server: subprocess.Popen, port: int, timeout: float = 180) -> "PageClient":
    """A :class:`PageClient` for ``/predict`` once the page at ``port`` serves its configuration."""
    start = time.perf_counter()
    while True:
        if server.poll() is not None or time.perf_counter() - start > timeout:
            stop_app(server)
            raise RuntimeError("the app did not start")
        try:
            return PageClient(f"http://127.0.0.1:{port}/")
        except Exception:
            time.sleep(0.05)


def stop_app(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


class PageClient:
    """One page view: the page's round trip for one endpoint (upload, queue, server-sent events, then the overlay
    file), every event under the one session a browser tab keeps."""

    def __init__(self, url: str, api_name: str = "predict", timeout: float = 60):
        import httpx

        self.url = url.rstrip("/")
        self.session = uuid.uuid4().hex
        self.http = httpx.Client(timeout=timeout)
        self.retries = 0  # requests sent again after the server dropped their kept-alive connection
        config = self._send("GET", "/config").json()
        dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
        self.fn_index = dependency["id"]
        inputs = {c["id"]: c for c in config["components"]}
        # the page sends every input; those after the file keep the values the page starts with
        self.defaults = [inputs[i]["props"].get("value") for i in dependency["inputs"][1:]]

    def _send(self, method: str, path: str, *, stream: bool = False, **kwargs):
        """One request, sent once more on a new connection if the server closed the kept-alive one as it went out, as
        a browser does: uvicorn drops a connection idle for 5 s, and a request leaving at that moment meets a reset
        (the soak saw one in 12,211). ``stream``: the response unread, for server-sent events (the caller closes it)."""
        import httpx

        for attempt in (1, 2):
            try:
                request = self.http.build_request(
                    method, path if path.startswith("http") else self.url + path, **kwargs
                )
                return self.http.send(request, stream=stream).raise_for_status()
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if attempt == 2:
                    raise
                self.retries += 1

    def upload(self, path: str | Path) -> dict:
        """Upload a file as the page does; the FileData the page then sends."""
        content = Path(path).read_bytes()  # bytes, not a handle: a request sent again sends the same file
        uploaded = self._send("POST", "/gradio_api/upload", files={"files": (Path(path).name, content)}).json()[0]
        return {"path": uploaded, "meta": {"_type": "gradio.FileData"}}

    def call(self, fn_index: int, data: list) -> list:
        """One event of the page (``fn_index``, the dependency's id) with ``data``, through the queue and its
        server-sent events; the outputs (raises RuntimeError with the server's message)."""
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": None}
        event = self._send("POST", "/gradio_api/queue/join", json=body).json()["event_id"]
        query = {"session_hash": self.session}
        events = self._send("GET", "/gradio_api/queue/data", params=query, stream=True)
        try:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" and message.get("event_id") == event:
                    output = message.get("output") or {}
                    if not message.get("success", True) or "error" in output:
                        raise RuntimeError(output.get("error") or "the server reported an error")
                    return output["data"]
        finally:
            events.close()
        raise RuntimeError("the event stream ended without an answer")

    def predict(self, path: str | Path, fetch_images: bool = True) -> list:
        """The endpoint's output for the file at ``path`` (raises RuntimeError with the server's message)."""
        data = self.call(self.fn_index, [self.upload(path), *self.defaults])
        if fetch_images:  # what the browser loads next: the overlay image
            for item in data:
                if isinstance(item, dict) and item.get("url") and Path(item.get("path", "")).suffix in IMAGE_SUFFIXES:
                    self._send("GET", item["url"])
                    break
        return data

    def close(self) -> None:
        self.http.close()
