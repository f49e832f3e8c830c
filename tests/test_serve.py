"""The REST API (`charlib serve`): answers, limits, every bad input as a JSON 4xx, nothing on disk.

Requests go through FastAPI's TestClient (in process, no sockets) to an app around the session's
tiny run; start-up errors go through the command line.
"""

from __future__ import annotations

import base64
import io
import json
import re
import resource
import socket
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image

from charlib import cli
from charlib.apps import serve
from charlib.vision.strokes import SCRIPTED, Strokes, rasterize

from conftest import snapshot

A = SCRIPTED["A"]
A_JSON = {
    "strokes": [[list(p) for p in s] for s in A.strokes],
    "width": A.width,
    "height": A.height,
}


@pytest.fixture(scope="module")
def service(tiny_run):
    svc = serve.load(tiny_run, "torch", device="cpu")
    yield svc
    svc.batcher.close()


@pytest.fixture(scope="module")
def client(service):
    from fastapi.testclient import TestClient

    with TestClient(serve.create_app(service)) as c:
        yield c


def png(drawing: Strokes = A) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rasterize(drawing)).save(buffer, format="PNG")
    return buffer.getvalue()


def refused(response, status: int, *words: str) -> str:
    """The response is a JSON error with this status, one sentence holding `words`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert message and "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


# What it answers ------------------------------------------------------------------------------


def test_strokes_image_and_upload_give_the_same_answer(client, service):
    expected = service.predictor.predict(A)
    by_json = client.post("/predict", json=A_JSON).json()
    by_raw = client.post("/predict", content=png(), headers={"content-type": "image/png"}).json()
    by_form = client.post("/predict", files={"file": ("a.png", png(), "image/png")}).json()
    assert by_json["guesses"] == list(expected)  # the strokes path is the Predictor's
    assert by_json["status"] == expected.status and by_json["run"] == "tiny"
    assert len(by_json["guesses"]) == 5 and by_json["ms"] >= 0
    for other in (by_raw, by_form):
        assert [g["code"] for g in other["guesses"]] == [g["code"] for g in by_raw["guesses"]]
    assert by_raw["guesses"] == by_form["guesses"]


def test_view_is_the_models_28px_input_as_png(client, service):
    answer = client.post("/predict?view=true", json=A_JSON).json()
    head, data = answer["view"].split(",", 1)
    assert head == "data:image/png;base64"
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    assert img.shape == (service.predictor.size,) * 2
    assert np.array_equal(img, service.predictor.prepare(A))
    assert "view" not in client.post("/predict", json=A_JSON).json()


def test_blank_drawing_is_nothing_drawn(client):
    answer = client.post("/predict", json={"strokes": []}).json()
    assert answer["status"] == "nothing drawn" and answer["guesses"] == []


def test_top_k_above_the_class_count_is_capped(client, service):
    n = len(service.predictor.classes)
    answer = client.post("/predict", json={**A_JSON, "top_k": n + 500}).json()
    assert len(answer["guesses"]) == n
    assert len(client.post("/predict?top_k=2", json=A_JSON).json()["guesses"]) == 2


def test_batch_of_drawings_and_of_files(client, service):
    drawings = [A_JSON, {"strokes": []}, {**A_JSON, "strokes": A_JSON["strokes"][:1]}]
    answer = client.post("/predict/batch?top_k=3", json={"drawings": drawings}).json()
    assert [r["status"] for r in answer["results"]][1] == "nothing drawn"
    alone = [client.post("/predict?top_k=3", json=d).json()["guesses"] for d in drawings]
    for got, expected in zip(answer["results"], alone, strict=True):  # batched: float noise
        assert [g["code"] for g in got["guesses"]] == [g["code"] for g in expected]
        got_p = [g["confidence"] for g in got["guesses"]]
        np.testing.assert_allclose(got_p, [g["confidence"] for g in expected], atol=1e-5)
    files = [("files", (f"{i}.png", png(), "image/png")) for i in range(3)]
    answer = client.post("/predict/batch", files=files).json()
    assert len(answer["results"]) == 3 and len({str(r) for r in answer["results"]}) == 1


def test_health_classes_docs_and_the_page(client, service):
    health = client.get("/health").json()
    assert health["model_loaded"] and health["run"] == "tiny" and health["backend"] == "torch"
    assert health["limits"]["body_bytes"] == serve.MAX_BODY
    classes = client.get("/classes").json()["classes"]
    assert [c["code"] for c in classes] == list(service.predictor.classes)
    assert {"code": 65, "char": "A"} in classes
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/classes"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()  # works offline too
    script = re.search(r'src="([^"]*swagger-ui-bundle\.js)"', docs.text).group(1)
    assert script.startswith("/") and client.get(script).status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "charlib-canvas" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: it works offline
    assert client.get("/static/pad.js").status_code == 200


def test_requests_share_the_model_concurrently(service):
    """Threads asking at once get exactly what each would alone (micro-batches split right)."""
    import asyncio

    rng = np.random.default_rng(0)
    stacks = [
        rng.integers(0, 255, (int(n), 28, 28), dtype=np.uint8) for n in rng.integers(1, 5, 24)
    ]
    alone = [service.predictor.probabilities(s) for s in stacks]
    got = [None] * len(stacks)

    def ask(i):
        got[i] = asyncio.run(service.batcher(stacks[i]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(stacks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for mine, expected in zip(got, alone, strict=True):
        np.testing.assert_allclose(mine, expected, atol=1e-5)


# Bad input: each a JSON 4xx with one sentence --------------------------------------------------


def test_empty_body(client):
    refused(
        client.post("/predict", content=b"", headers={"content-type": "image/png"}), 422, "empty"
    )
    refused(client.post("/predict", content=b"", headers={"content-type": "application/json"}), 422)


def test_text_file_as_image(client):
    text = b"not a picture, a shopping list\n"
    refused(
        client.post("/predict", files={"file": ("list.txt", text, "image/png")}), 422, "list.txt"
    )
    refused(
        client.post("/predict", content=text, headers={"content-type": "image/png"}), 422, "image"
    )


def test_truncated_png(client):
    data = png()[:200]
    refused(client.post("/predict", content=data, headers={"content-type": "image/png"}), 422)


def test_decompression_bomb_refused_from_its_header_without_memory(client, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb)  # 400 megapixels in a few hundred KB
    data = bomb.read_bytes()
    assert len(data) < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = client.post("/predict", content=data, headers={"content-type": "image/png"})
    refused(r, 413, "too large")
    r = client.post("/predict", files={"file": ("bomb.png", data, "image/png")})
    refused(r, 413, "bomb.png")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50, f"refusing the bomb raised peak memory by {grown_mb:.0f} MB"


def test_image_over_the_pixel_limit(client, monkeypatch):
    monkeypatch.setattr(serve, "MAX_PIXELS", 100 * 100)
    r = client.post("/predict", content=png(), headers={"content-type": "image/png"})
    refused(r, 413, "280×280", "10,000")


def test_body_over_the_limit(client):
    big = b"\0" * (50 * 1024 * 1024)
    r = client.post("/predict", content=big, headers={"content-type": "image/png"})
    refused(r, 413, "8 MB")

    def chunks():  # no Content-Length: refused once the streamed body passes the limit
        for _ in range(10):
            yield b"\0" * (1024 * 1024)

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    refused(r, 413, "8 MB")


@pytest.mark.parametrize(
    "body, status, words",
    [
        ('{"strokes": [[[NaN, 40], [80, 240]]]}', 400, ["JSON", "NaN"]),
        ('{"strokes": [[[Infinity, 40]]]}', 400, ["JSON"]),
        ('{"strokes": [[[1e12, 40], [80, 240]]]}', 422, ["off the 280×280 canvas"]),
        ('{"strokes": [[[-5, 40]]]}', 422, ["off the"]),
        ('{"strokes": [[[10, 40]]], "width": 100000}', 422, ["width", "4096"]),
        ('{"strokes": "A"}', 422, ["strokes"]),
        ('{"strokes": [[["10", 40]]]}', 422, ["[x, y]"]),
        ('{"strokes": [[{"x": 1, "y": 2}]]}', 422, ["[x, y]"]),
        ('{"strokes": [[[1, 2, 3]]]}', 422, ["[x, y]"]),
        ('{"strokes": [[[true, 2]]]}', 422, ["[x, y]"]),
        ('{"strokes": [[[1, 2]]], "width": "280"}', 422, ["width"]),
        ('{"strokes": [[[1, 2]]], "top_k": "five"}', 422, ["top_k"]),
        ('{"strokes": [[[1, 2]]], "view": "maybe"}', 422, ["view"]),
        ('[[[1, 2]]]', 422, ["object"]),
        ('{"strokes": [[[1, 2]]], "colour": "red"}', 422, ["unknown field 'colour'"]),
        ('{"strokes": [[[1, 2]]', 400, ["not valid JSON"]),
    ],
)  # fmt: skip
def test_bad_strokes_json(client, body, status, words):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    refused(r, status, *words)


def test_too_many_points_and_strokes(client):
    line = [[i % 280, (i // 280) % 280] for i in range(100_000)]
    refused(client.post("/predict", json={"strokes": [line]}), 422, "100,000", "20,000")
    many = [[[1, 1]]] * (serve.MAX_STROKES + 1)
    refused(client.post("/predict", json={"strokes": many}), 422, "too many strokes")


@pytest.mark.parametrize("query", ["top_k=0", "top_k=-3", "top_k=two", "top_k=1.5", "view=2"])
def test_bad_options(client, query):
    refused(client.post(f"/predict?{query}", json=A_JSON), 422, query.split("=")[0])


def test_unknown_query_and_form_fields(client):
    refused(client.post("/predict?topk=3", json=A_JSON), 422, "unknown query parameter 'topk'")
    files = {"file": ("a.png", png(), "image/png"), "caption": (None, "hello")}
    refused(client.post("/predict", files=files), 422, "unknown form field 'caption'")
    two = [("file", ("a.png", png(), "image/png"))] * 2
    refused(client.post("/predict", files=two), 422, "exactly one")


def test_content_types(client):
    refused(client.post("/predict", content=b"A", headers={"content-type": "text/plain"}), 415)
    refused(client.post("/predict", content=b"A"), 415, "Content-Type")
    no_boundary = {"content-type": "multipart/form-data"}
    refused(client.post("/predict", content=b"--x\r\n", headers=no_boundary), 400, "boundary")
    r = client.post("/predict/batch", content=png(), headers={"content-type": "image/png"})
    refused(r, 415, "files")


def test_bad_batches(client):
    refused(client.post("/predict/batch", json={"drawings": []}), 422, "1 to 64")
    too_many = {"drawings": [A_JSON] * (serve.MAX_BATCH + 1)}
    refused(client.post("/predict/batch", json=too_many), 422, "1 to 64")
    bad = {"drawings": [A_JSON, {"strokes": [[[1e9, 1]]]}]}
    refused(client.post("/predict/batch", json=bad), 422, "drawings[1]", "off the")
    refused(client.post("/predict/batch", json={"drawings": [A_JSON, 3]}), 422, "drawings[1]")
    files = [("files", ("ok.png", png(), "image/png")), ("files", ("x.txt", b"text", "image/png"))]
    refused(client.post("/predict/batch", files=files), 422, "files[1]", "x.txt")


def test_unknown_paths_and_methods_answer_json(client):
    refused(client.get("/nowhere"), 404, "/nowhere", "/docs")
    refused(client.get("/predict"), 405, "GET")


def test_nothing_a_request_sends_is_written_to_disk(client, tiny_run, tmp_path, monkeypatch):
    """Uploads up to the body limit (past Starlette's 1 MB spooling) stay in memory."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    monkeypatch.setenv("TMPDIR", str(spool))
    before = snapshot(tiny_run)
    noise = np.random.default_rng(0).integers(0, 255, (1400, 1400), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=0)
    big = buffer.getvalue()
    assert 1024 * 1024 < len(big) < serve.MAX_BODY
    assert client.post("/predict", files={"file": ("big.png", big, "image/png")}).status_code == 200
    assert client.post("/predict", json=A_JSON).status_code == 200
    assert list(spool.iterdir()) == []
    assert snapshot(tiny_run) == before


# Start-up ------------------------------------------------------------------------------------


def test_unknown_run_at_start_up(capsys):
    assert cli.main(["serve", "--run", "no-such-run", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("charlib: error:") and "no-such-run" in err and len(err.splitlines()) == 1


def test_port_in_use(tiny_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--run", str(tiny_run), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err


def test_bad_backend_and_port(tiny_run, capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--backend", "tpu"])
    assert cli.main(["serve", "--run", str(tiny_run), "--port", "70000"]) == 1
    assert "--port must be from 0 to 65535" in capsys.readouterr().err


def test_json_errors_are_one_sentence_even_for_a_failure(service, monkeypatch):
    """A failure inside the model is a 500 with a plain sentence, never a traceback."""
    from fastapi.testclient import TestClient

    def broken(stack):
        raise RuntimeError("the model fell over")

    with TestClient(serve.create_app(service), raise_server_exceptions=False) as c:
        monkeypatch.setattr(service.batcher, "probabilities", broken)  # after the warm-up
        r = c.post("/predict", json=A_JSON)
    assert r.status_code == 500
    assert json.loads(r.text) == {"error": serve.FAILED}


# int8 ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_int8_model_agrees_with_fp32(tiny_run, capsys):
    """Static int8 calibrated on the run's training images answers like the fp32 model."""
    from charlib.data.loading import load_split
    from charlib.inference import export
    from charlib.inference.infer import Predictor

    assert cli.main(["export", "--run", str(tiny_run), "--onnx", "--int8"]) == 0
    assert "int8 ONNX model written to" in capsys.readouterr().out
    assert export.current(tiny_run, export.INT8) is not None
    fp32 = Predictor.from_run(tiny_run, backend="onnx")
    int8 = Predictor.from_run(tiny_run, backend="onnx-int8")
    images = load_split("synth-small", "validation", progress=False).subset(2, 0).images
    p32, p8 = fp32.probabilities(images), int8.probabilities(images)
    # The 1-epoch model is nearly uniform (top-1 ~11%): near ties flip, so compare shapes; the
    # benchmark measures accuracy on EMNIST (benchmarks/infer_latency.py).
    top5 = np.argsort(-p32, 1)[:, :5]
    inside = np.mean([b in t for b, t in zip(p8.argmax(1), top5, strict=True)])
    assert inside >= 0.95, f"int8's top guess is in fp32's top 5 for {inside:.0%} of images"
    corr = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(p32, p8, strict=True)])
    assert corr > 0.9, f"int8 and fp32 probabilities correlate at {corr:.2f}"
    auto = serve.load(tiny_run, "auto", device="cpu")  # finds the int8 model, no recalibration
    assert auto.backend == "onnx-int8" and "calibrating" not in capsys.readouterr().out
    auto.batcher.close()


def test_int8_needs_the_training_images(tiny_run, tmp_path, capsys):
    from charlib.inference import export
    from charlib.training import checkpoint

    ckpt = checkpoint.load(tiny_run / "best.pt")
    ckpt["params"] = {k: v for k, v in ckpt["params"].items() if k != "data"}
    run = tmp_path / "nodata"
    checkpoint.save(run / "best.pt", ckpt)
    with pytest.raises(ValueError, match="does not record its data"):
        export.int8(run)
    assert not (run / export.INT8).exists()
    svc = serve.load(run, "auto", device="cpu")  # falls back to fp32 and says so
    assert svc.backend == "onnx" and "instead of int8" in capsys.readouterr().out
    svc.batcher.close()


def test_a_client_that_hangs_up_mid_body_is_one_quiet_line_not_a_traceback(service, caplog):
    """A real server on a free 127.0.0.1 port: a client sends half a PNG body and closes; the
    log holds one line (at INFO) and no traceback, and the server answers the next request."""
    import http.client
    import logging
    import time

    import uvicorn

    sock = serve.listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(serve.create_app(service), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                b"Content-Length: 100000\r\n\r\n" + png()[:200]
            )
            time.sleep(0.3)  # the server is reading the body now
        while time.monotonic() < deadline and not any(
            "disconnected" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        health.request("GET", "/health")
        assert health.getresponse().status == 200
        health.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive()
    ours = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(ours) == 1 and "POST /predict" in ours[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
