"""The benchmark runs end to end on a tiny model and records what it promises (figures, not asserts on time)."""

import json

import pytest

from benchmarks import bench

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # measurements


def test_inference_benchmark_writes_its_table(dataset, tmp_path, capsys):
    release = bench.random_release("test_convnext", 128, tmp_path)
    out = tmp_path / "bench.json"
    assert (
        bench.main(
            [
                "inference",
                "--model",
                str(release),
                "--data",
                str(dataset),
                "--repeats",
                "2",
                "--limit",
                "12",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "model call: torch fp32 eager" in printed and "x vs grad-cam default" in printed
    result = json.loads(out.read_text())
    model = result["models"][0]
    assert model["backend_auto"] == "onnxruntime" and model["batch"]["onnxruntime"]["images"] == 12
    for name in ("torch", "onnxruntime"):
        row = model["latency"][f"predict+explain: one pass, {name}"]
        assert row["heatmap_correlation"] >= 0.99 and row["p50_ms"] > 0
    verdict = model["latency"]["predict+verdict: onnxruntime"]
    assert verdict["p50_ms"] > 0 and verdict["ratio_to_predict"] > 0 and "predict+verdict" in printed
    assert model["agreement_onnx_vs_torch"]["top1_agreement"] == 1.0
    assert model["agreement_onnx_vs_torch"]["max_prob_diff"] <= 1e-4
    for kind in ("dynamic", "static, QDQ"):
        assert "top1_agreement_256" in model["latency"][f"model call: onnxruntime int8 ({kind})"], kind
    assert result["machine"]["cores"] >= 1 and not release.joinpath("model.onnx").exists()  # exported a copy


def test_volume_benchmark_reports_its_figures(dataset, tmp_path):
    release = bench.random_release("test_convnext", 64, tmp_path)
    row = bench.bench_volume(release, dataset / "Testing", tmp_path, slices=6, size=64, repeats=1)
    assert row["slices"] == 6 and row["read"] + row["skipped"] == 6 and row["p50_s"] > 0


def test_the_page_client_sends_a_request_again_once_when_its_connection_was_dropped():
    """As a browser does: a kept-alive connection the server closed as the request went out is retried once, on a new
    connection, and counted; a second failure is an error."""
    import httpx

    from benchmarks.appserver import PageClient

    failures = [1]

    def server(request):
        if failures[0]:
            failures[0] -= 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"path": request.url.path})

    page = PageClient.__new__(PageClient)  # no live server: the client's transport answers
    page.url, page.retries, page.http = "http://127.0.0.1:1", 0, httpx.Client(transport=httpx.MockTransport(server))
    assert page._send("GET", "/config").json() == {"path": "/config"} and page.retries == 1
    failures[0] = 2
    with pytest.raises(httpx.RemoteProtocolError):
        page._send("POST", "/gradio_api/queue/join", json={})
    assert page.retries == 2
