"""Load test of `python -m charlib serve`: throughput, latency, errors and memory under load.

A bounded test on 127.0.0.1 that stops by itself. It makes a temporary run with an untrained
model (latency does not depend on the weights; the CPU default stem "imagenet", the 62 EMNIST
classes 0-9 A-Z a-z) unless --run names one, starts the server in a subprocess on a free port,
and sends it, from N concurrent clients for each N in --clients (threads, one keep-alive
`http.client` connection each), --requests prebuilt requests after a short warm-up. The mix is
fixed by --seed: 50% JSON strokes (the scripted drawings, jittered), 40% PNG uploads of the same
drawings at 280×280 (half multipart 'file', half raw image/png) and 10% malformed requests
(empty body, text as image/png, truncated PNG, NaN, a 1e12 coordinate, an unknown field,
top_k=0, text/plain), each of which must get a 4xx while every good request gets a 200.

Per level: predictions/s (200s per wall second), client-side latency p50/p95/p99 (all requests
and the good ones), counts by HTTP status, 5xx, and the server's RSS before and after. The seed
baseline, in the same run: a stand-in for the seed's Flask app (stdlib ThreadingHTTPServer,
HTTP/1.1 keep-alive, each answer in one write, raw PNG in, the seed path of infer_latency.py:
PIL -> 224×224 RGB, fp32 ResNet-18, top-5 JSON out) under the same kind of PNGs at 4 clients.

Targets: >= 300 predictions/s at 16 clients, p99 <= 50 ms at 4 clients, no 5xx, every malformed
request a 4xx, memory growth < 50 MB. --max-seconds caps the whole test's wall clock.
Writes benchmarks/results/serve_load-<device>.json and prints a table.

Usage: python benchmarks/serve_load.py [--run RUN] [--backend auto] [--clients 1,4,16]
       [--requests 1500] [--warmup 50] [--seed-requests 200] [--max-seconds 300] [--seed 0]
       [--no-seed]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
EMNIST = [ord(c) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"]
MALFORMED = (
    "empty body",
    "text file as image/png",
    "truncated PNG",
    "NaN coordinate",
    "coordinate 1e12",
    "unknown JSON field",
    "top_k=0",
    "text/plain",
)
GOAL_RPS, GOAL_P99_MS, GOAL_GROWTH_MB = 300, 50, 50
START_TIMEOUT_S, REQUEST_TIMEOUT_S = 120, 30


@dataclass(frozen=True)
class Req:
    """One prebuilt request: what it is, what it sends, and whether it should succeed."""

    kind: str
    body: bytes
    content_type: str | None
    path: str = "/predict"
    good: bool = True

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "path": self.path,
            "content_type": self.content_type,
            "body_bytes": len(self.body),
            "body_head": repr(self.body[:160]),
        }


@dataclass
class Outcome:
    """One answered (or failed) request, timed at the client."""

    index: int
    status: int  # 0: no HTTP answer (connection error or timeout)
    ms: float
    answer: bytes = field(repr=False, default=b"")


# The requests ---------------------------------------------------------------------------------


def jitter(drawing, rng: np.random.Generator):
    """A scripted drawing moved, scaled and shaken a little, kept on its canvas."""
    from charlib.vision.strokes import Strokes

    scale, shift = rng.uniform(0.75, 1.1), rng.uniform(-25, 25, size=2)
    centre = np.array([drawing.width, drawing.height]) / 2
    strokes = []
    for stroke in drawing.strokes:
        pts = (np.array(stroke) - centre) * scale + centre + shift
        pts += rng.normal(0, 2.5, size=pts.shape)
        pts = np.clip(pts, 0, [drawing.width, drawing.height]).round(1)
        strokes.append([[float(x), float(y)] for x, y in pts])
    return Strokes(strokes, width=drawing.width, height=drawing.height)


def png_of(drawing) -> bytes:
    """The drawing rasterised (white on black, its canvas size) as PNG bytes."""
    from charlib.vision.strokes import rasterize

    buffer = io.BytesIO()
    Image.fromarray(rasterize(drawing)).save(buffer, format="PNG")
    return buffer.getvalue()


def strokes_json(drawing) -> bytes:
    return json.dumps(
        {"strokes": drawing.strokes, "width": drawing.width, "height": drawing.height}
    ).encode()


def multipart(png: bytes, boundary: str) -> tuple[bytes, str]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="char.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return (
        head + png + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def good_request(kind: str, drawing, n: int) -> Req:
    if kind == "strokes":
        return Req(kind, strokes_json(drawing), "application/json")
    if kind == "png multipart":
        body, content_type = multipart(png_of(drawing), f"charlib-load-{n:06d}")
        return Req(kind, body, content_type)
    return Req("png raw", png_of(drawing), "image/png")


def malformed_request(n: int, drawing) -> Req:
    """The n-th malformed request, cycling through MALFORMED."""
    kind = MALFORMED[n % len(MALFORMED)]
    pts = drawing.strokes
    if kind == "empty body":
        return Req(kind, b"", "image/png", good=False)
    if kind == "text file as image/png":
        return Req(kind, b"just a note, not a picture\n" * 4, "image/png", good=False)
    if kind == "truncated PNG":
        png = png_of(drawing)
        return Req(kind, png[: len(png) // 2], "image/png", good=False)
    if kind == "NaN coordinate":  # json.dumps writes the literal NaN (not JSON)
        body = json.dumps({"strokes": [[[float("nan"), 10.0], *pts[0][1:]]]}).encode()
        return Req(kind, body, "application/json", good=False)
    if kind == "coordinate 1e12":
        body = json.dumps({"strokes": [[[1e12, 10.0], *pts[0][1:]]]}).encode()
        return Req(kind, body, "application/json", good=False)
    if kind == "unknown JSON field":
        body = json.dumps({"strokes": pts, "colour": "red"}).encode()
        return Req(kind, body, "application/json", good=False)
    if kind == "top_k=0":
        return Req(kind, strokes_json(drawing), "application/json", "/predict?top_k=0", False)
    return Req(kind, strokes_json(drawing), "text/plain", good=False)


def build_requests(count: int, seed: int) -> list[Req]:
    """`count` requests in blocks of 10 (5 strokes, 2+2 PNG, 1 malformed), shuffled by seed."""
    from charlib.vision.strokes import SCRIPTED

    rng = np.random.default_rng(seed)
    block = ["strokes"] * 5 + ["png multipart"] * 2 + ["png raw"] * 2 + ["malformed"]
    drawings = list(SCRIPTED.values())
    out: list[Req] = []
    bad = 0
    while len(out) < count:
        for kind in rng.permutation(block):
            drawing = jitter(drawings[rng.integers(len(drawings))], rng)
            if kind == "malformed":
                out.append(malformed_request(bad, drawing))
                bad += 1
            else:
                out.append(good_request(str(kind), drawing, len(out)))
    return out[:count]


def seed_requests(count: int, seed: int) -> list[Req]:
    """Raw PNG uploads of the jittered scripted drawings, for the seed stand-in."""
    from charlib.vision.strokes import SCRIPTED

    rng = np.random.default_rng(seed)
    drawings = list(SCRIPTED.values())
    return [
        good_request("png raw", jitter(drawings[rng.integers(len(drawings))], rng), i)
        for i in range(count)
    ]


# Servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def memory_mb(pid: int) -> dict:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(
                    int(value.split()[0]) / 1024, 1
                )
    except (OSError, ValueError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system, all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


class Server:
    """A server subprocess in its own process group: started, waited for, always stopped."""

    def __init__(self, name: str, command: list[str], port: int, log: Path):
        self.name, self.command, self.port, self.log = name, command, port, log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_ready(self) -> None:
        """Until GET /health answers {"status": "ok"}; RuntimeError with the log's tail if not."""
        start = time.monotonic()
        while time.monotonic() - start < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/health")
                resp = conn.getresponse()
                ok = resp.status == 200 and json.loads(resp.read()).get("status") == "ok"
                conn.close()
                if ok:
                    print(f"{self.name} ready in {time.monotonic() - start:.1f} s on :{self.port}")
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.25)
        tail = self.log.read_text(errors="replace")[-3000:]
        why = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else "timed out"
        raise RuntimeError(f"{self.name} did not start ({why}); its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def make_run(folder: Path) -> Path:
    """A run folder holding an untrained checkpoint as `fit` writes it (CPU default stem)."""
    from charlib.training import checkpoint
    from charlib.training.model import resnet18
    from charlib.training.settings import Settings

    params = Settings(device="cpu", stem="imagenet").params()
    params.update(img_size=28, data_size=28, ink_fill=24 / 28, classes=EMNIST)
    emnist = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    emnist /= "emnist-byclass"  # int8 calibrates on its training images (else synth-small's)
    params["data"] = str(emnist) if emnist.exists() else "synth-small"
    model = resnet18(len(EMNIST), stem="imagenet", in_channels=params["channels"])
    run = folder / "load-untrained"
    checkpoint.save(run / "best.pt", checkpoint.of_model(model, params))
    return run


def seed_server(port: int) -> None:
    """The seed stand-in (run in a child process): raw PNG in, the seed path, top-5 JSON out."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from infer_latency import CLASSES, SeedPath

    torch.manual_seed(0)
    model = SeedPath(torch.device("cpu"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # Flask's threaded dev server keeps connections alive too
        wbufsize = -1  # buffered: each response leaves in one write (no Nagle stall on it)

        def answer(self, status: int, data: dict) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # http.server's name
            self.answer(200 if self.path == "/health" else 404, {"status": "ok"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                image = Image.open(io.BytesIO(body)).convert("RGB")
            except Exception as e:  # the seed answered any unreadable upload with a 400
                return self.answer(400, {"error": str(e)[:80]})
            top = model(image)
            self.answer(200, {"guesses": [{"code": CLASSES[i], "confidence": p} for i, p in top]})

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((HOST, port), Handler).serve_forever()


# Clients --------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects (and resends once) when the server dropped it."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, req: Req) -> tuple[int, float, bytes]:
        headers = {"Content-Type": req.content_type} if req.content_type else {}
        start = time.perf_counter()
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, REQUEST_TIMEOUT_S)
                self.conn.request("POST", req.path, body=req.body, headers=headers)
                resp = self.conn.getresponse()
                answer = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, (time.perf_counter() - start) * 1000, answer
            except (ConnectionError, http.client.HTTPException, TimeoutError) as e:
                self.close()
                if attempt or isinstance(e, TimeoutError):
                    return 0, (time.perf_counter() - start) * 1000, repr(e).encode()
        raise AssertionError("unreachable")


def load(port: int, reqs: list[Req], clients: int, deadline: float) -> tuple[list, float, bool]:
    """Send reqs from `clients` threads sharing one queue -> (outcomes, wall seconds, cut short)."""
    lock, outcomes, cursor = threading.Lock(), [], iter(range(len(reqs)))
    gate = threading.Barrier(clients + 1)
    cut = threading.Event()

    def worker() -> None:
        client, mine = Client(port), []
        gate.wait()
        while True:
            if time.monotonic() > deadline:
                cut.set()
                break
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            mine.append(Outcome(i, *client.send(reqs[i])))
        client.close()
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return sorted(outcomes, key=lambda o: o.index), time.perf_counter() - start, cut.is_set()


# Results --------------------------------------------------------------------------------------


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = np.percentile(np.array(ms), [50, 95, 99])
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "p99_ms": round(p99, 2)}


def wrong(req: Req, o: Outcome) -> str | None:
    """Why an outcome is wrong (5xx, a good request not a 200 with guesses, a malformed not a
    4xx), or None when it is right."""
    if o.status >= 500 or o.status == 0:
        return "server error" if o.status else "no HTTP answer"
    if not req.good:
        return None if 400 <= o.status < 500 else "malformed request not refused with a 4xx"
    if o.status != 200:
        return "good request not answered 200"
    try:
        answer = json.loads(o.answer)
        assert answer["status"] in ("ok", "unsure", "nothing drawn") and "guesses" in answer
    except (ValueError, KeyError, TypeError, AssertionError):
        return "good request answered 200 without status and guesses"
    return None


def summarize(reqs: list[Req], outcomes: list[Outcome], wall: float, clients: int) -> dict:
    """One level's numbers, and the first wrong answers with their requests."""
    good = [o for o in outcomes if reqs[o.index].good]
    bad = [o for o in outcomes if not reqs[o.index].good]
    by_status: dict[str, int] = {}
    for o in outcomes:
        by_status[str(o.status)] = by_status.get(str(o.status), 0) + 1
    kinds = sorted({reqs[o.index].kind for o in outcomes})
    problems = []
    for o in outcomes:
        why = wrong(reqs[o.index], o)
        if why and len(problems) < 20:
            problems.append(
                {
                    "why": why,
                    "status": o.status,
                    "answer": o.answer[:300].decode("utf-8", "replace"),
                }
                | {"request": reqs[o.index].describe(), "index": o.index}
            )
    ok = sum(o.status == 200 for o in outcomes)
    return {
        "clients": clients,
        "requests": len(outcomes),
        "wall_s": round(wall, 2),
        "predictions_per_s": round(ok / wall, 1) if wall else 0.0,
        "requests_per_s": round(len(outcomes) / wall, 1) if wall else 0.0,
        "all": percentiles([o.ms for o in outcomes]),
        "good": percentiles([o.ms for o in good]),
        "p50_ms_by_kind": {
            k: percentiles([o.ms for o in outcomes if reqs[o.index].kind == k])["p50_ms"]
            for k in kinds
        },
        "by_status": dict(sorted(by_status.items())),
        "status_5xx": sum(o.status >= 500 for o in outcomes),
        "no_answer": sum(o.status == 0 for o in outcomes),
        "malformed": len(bad),
        "malformed_all_4xx": all(400 <= o.status < 500 for o in bad),
        "good_all_200": all(wrong(reqs[o.index], o) is None for o in good),
        "wrong": sum(wrong(reqs[o.index], o) is not None for o in outcomes),
        "problems": problems,
    }


def targets(levels: list[dict], memory: dict) -> list[dict]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    at = {lv["clients"]: lv for lv in levels}
    rps16 = at[16]["predictions_per_s"] if 16 in at else None
    p99_4 = at[4]["good"]["p99_ms"] if 4 in at else None
    growth = memory.get("growth_mb")
    rows = [
        (f"predictions/s at 16 clients >= {GOAL_RPS}", rps16, lambda v: v >= GOAL_RPS),
        (
            f"p99 at 4 clients (good requests) <= {GOAL_P99_MS} ms",
            p99_4,
            lambda v: v <= GOAL_P99_MS,
        ),
        (
            "no 5xx (and no unanswered request)",
            sum(lv["status_5xx"] + lv["no_answer"] for lv in levels),
            lambda v: v == 0,
        ),
        (
            "every malformed request answered with a 4xx",
            all(lv["malformed_all_4xx"] for lv in levels),
            bool,
        ),
        (
            "every good request answered 200 with guesses",
            all(lv["good_all_200"] for lv in levels),
            bool,
        ),
        (f"memory growth < {GOAL_GROWTH_MB} MB", growth, lambda v: v < GOAL_GROWTH_MB),
    ]
    return [
        {"target": name, "value": value, "met": None if value is None else bool(check(value))}
        for name, value, check in rows
    ]


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def table(levels: list[dict]) -> str:
    head = (
        "| clients | requests | pred/s | p50 ms | p95 ms | p99 ms | good p50 | good p99 "
        "| statuses | 5xx | malformed 4xx | good 200 | server CPU ms/req |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|:---:|:---:|---:|"
    )
    rows = [
        f"| {lv['clients']} | {lv['requests']} | {lv['predictions_per_s']} "
        f"| {lv['all']['p50_ms']} | {lv['all']['p95_ms']} | {lv['all']['p99_ms']} "
        f"| {lv['good']['p50_ms']} | {lv['good']['p99_ms']} "
        f"| {' '.join(f'{s}:{n}' for s, n in lv['by_status'].items())} | {lv['status_5xx']} "
        f"| {yes(lv['malformed_all_4xx'])} | {yes(lv['good_all_200'])} "
        f"| {lv.get('server_cpu_ms_per_request')} |"
        for lv in levels
    ]
    return "\n".join([head, *rows])


# The runs -------------------------------------------------------------------------------------


def level_line(lv: dict) -> str:
    return (
        f"{lv['clients']:>3} clients: {lv['requests']} requests in {lv['wall_s']} s, "
        f"{lv['predictions_per_s']} predictions/s, p50 {lv['all']['p50_ms']} ms, "
        f"p99 {lv['all']['p99_ms']} ms, statuses {lv['by_status']}"
        + (
            f", CPU ms per request: server {lv['server_cpu_ms_per_request']}, "
            f"clients {lv['client_cpu_ms_per_request']}"
            if "server_cpu_ms_per_request" in lv
            else ""
        )
    )


def run_ours(args, run, tmp: Path, deadline: float) -> dict:
    """Warm-up, then every client level against `charlib serve`, with its memory around them."""
    warm = build_requests(args.warmup, args.seed + 1)
    reqs = build_requests(args.requests, args.seed)
    port = free_port()
    command = [sys.executable, "-m", "charlib", "serve", "--run", str(run), "--host", HOST]
    command += ["--port", str(port), "--backend", args.backend]
    levels, memory, cut = [], {}, False
    log = tmp / "serve.log"
    with Server("charlib serve", command, port, log) as server:
        pid = server.proc.pid
        memory["started"] = memory_mb(pid)
        served_by = health(port)
        outcomes, wall, _ = load(port, warm, 4, deadline)
        warmup = summarize(warm, outcomes, wall, 4)
        memory["before"] = memory_mb(pid)
        for clients in args.clients:
            if time.monotonic() > deadline or server.proc.poll() is not None:
                cut = True
                break
            cpu = cpu_seconds(pid), time.process_time()
            outcomes, wall, cut = load(port, reqs, clients, deadline)
            levels.append(summarize(reqs, outcomes, wall, clients))
            n = max(1, len(outcomes))
            levels[-1]["server_cpu_ms_per_request"] = round(
                (cpu_seconds(pid) - cpu[0]) * 1000 / n, 2
            )
            levels[-1]["client_cpu_ms_per_request"] = round(
                (time.process_time() - cpu[1]) * 1000 / n, 2
            )
            print(level_line(levels[-1]), flush=True)
            if cut:
                break
        memory["after"] = memory_mb(pid)
        died = server.proc.poll()  # before it is stopped: None while it still runs
    if died is not None:
        print(f"the server died during the test (exit code {died}; negative: killed by a signal)")
    if "rss_mb" in memory["before"] and "rss_mb" in memory["after"]:
        memory["growth_mb"] = round(memory["after"]["rss_mb"] - memory["before"]["rss_mb"], 1)
    text = log.read_text(errors="replace")
    return {
        "command": " ".join(command),
        "served_by": served_by,
        "warmup": {k: warmup[k] for k in ("requests", "by_status", "wrong", "problems")},
        "levels": levels,
        "memory": memory,
        "cut_short": cut,
        "server_died": died,
        "server_log_tail": text[-2000:],
        "server_log_tracebacks": text.count("Traceback"),
    }


def health(port: int) -> dict:
    """The server's backend and device as it reports them (`--backend auto` picks one)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", "/health")
        answer = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return {k: answer.get(k) for k in ("backend", "device", "run", "classes")}


def run_seed(args, tmp: Path, deadline: float) -> dict:
    """The seed stand-in at 4 clients: 20 warm-up uploads, then --seed-requests timed ones."""
    warm, reqs = seed_requests(20, args.seed + 3), seed_requests(args.seed_requests, args.seed + 2)
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--seed-server", str(port)]
    with Server("seed stand-in", command, port, tmp / "seed.log"):
        load(port, warm, 4, deadline)
        outcomes, wall, cut = load(port, reqs, 4, deadline)
    level = summarize(reqs, outcomes, wall, 4)
    print("seed " + level_line(level), flush=True)
    return {"command": " ".join(command), "cut_short": cut, **level}


def compare(ours: dict, seed: dict | None) -> dict | None:
    """Ours against the seed stand-in at 4 clients: throughput and the PNG uploads' p50."""
    at4 = next((lv for lv in ours["levels"] if lv["clients"] == 4), None)
    if seed is None or at4 is None or not seed["predictions_per_s"]:
        return None
    ours_png = at4["p50_ms_by_kind"].get("png raw")
    return {
        "ours_predictions_per_s": at4["predictions_per_s"],
        "seed_predictions_per_s": seed["predictions_per_s"],
        "throughput_ratio": round(at4["predictions_per_s"] / seed["predictions_per_s"], 1),
        "ours_png_raw_p50_ms": ours_png,
        "seed_p50_ms": seed["all"]["p50_ms"],
        "p50_speedup_png": round(seed["all"]["p50_ms"] / ours_png, 1) if ours_png else None,
    }


def report(result: dict) -> None:
    ours, seed, vs = result["ours"], result["seed"], result["vs_seed"]
    load = result["load_average_1_5_15"]
    print(
        f"\ncharlib serve ({result['backend']}), {result['device']}, CPU: {result['cpu']}; "
        f"load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after\n"
    )
    print(table(ours["levels"]))
    mem = ours["memory"]
    print(
        f"\nserver RSS: {mem['started'].get('rss_mb')} MB started, "
        f"{mem['before'].get('rss_mb')} MB before the first level, "
        f"{mem['after'].get('rss_mb')} MB after the last (peak {mem['after'].get('peak_rss_mb')})"
    )
    if seed is not None:
        print(
            f"seed stand-in, 4 clients: {seed['predictions_per_s']} predictions/s, "
            f"p50 {seed['all']['p50_ms']} ms, p99 {seed['all']['p99_ms']} ms"
        )
    if vs is not None:
        print(
            f"ours / seed at 4 clients: {vs['throughput_ratio']}x the throughput "
            f"({vs['ours_predictions_per_s']} vs {vs['seed_predictions_per_s']} predictions/s); "
            f"PNG upload p50 {vs['ours_png_raw_p50_ms']} vs {vs['seed_p50_ms']} ms"
        )
    print("\ntargets:")
    for t in result["targets"]:
        met = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        print(f"  {met:<12} {t['target']}: {t['value']}")
    for lv in ours["levels"]:
        for p in lv["problems"][:5]:
            print(f"  problem at {lv['clients']} clients: {json.dumps(p)}")
    if result["cut_short"]:
        print(f"stopped early: the --max-seconds {result['max_seconds']} s cap was reached")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="an existing run (default: a temporary one)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        help="as `charlib serve --backend` (auto: int8 ONNX on a CPU, the server's default)",
    )
    parser.add_argument(
        "--clients",
        type=lambda s: [int(n) for n in s.split(",") if n.strip()],
        default=[1, 4, 16],
        help="concurrent clients per level, comma-separated (default 1,4,16)",
    )
    parser.add_argument("--requests", type=int, default=1500, help="requests per level")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted requests first")
    parser.add_argument("--seed-requests", type=int, default=200, help="timed seed requests")
    parser.add_argument("--max-seconds", type=float, default=300, help="wall-clock cap")
    parser.add_argument("--seed", type=int, default=0, help="the request mix's random seed")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed baseline")
    parser.add_argument("--seed-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.clients or min(args.clients) < 1 or args.requests < 1 or args.warmup < 1:
        parser.error("--clients, --requests and --warmup must be positive")
    return args


def main() -> None:
    args = parse_args()
    if args.seed_server is not None:
        seed_server(args.seed_server)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped too
    from charlib.common.env import environment

    started, load_before = time.monotonic(), os.getloadavg()
    deadline = started + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        tmp = Path(folder)
        run = args.run or make_run(tmp)
        ours = run_ours(args, run, tmp, deadline)
        seed = None
        if not args.no_seed and time.monotonic() < deadline:
            seed = run_seed(args, tmp, deadline)
    env = environment()
    gpu = "gpu" in env and args.backend in ("auto", "torch")
    result = {
        "benchmark": "serve_load",
        "device": env["gpu"] if gpu else f"CPU ({os.cpu_count()} cores, {platform.machine()})",
        "cpu": env["cpu"],
        "environment": env,
        "backend": f"{args.backend}: {ours['served_by']['backend']}",
        "run": str(args.run) if args.run else "temporary, untrained (imagenet stem, 62 classes)",
        "settings": {k: v for k, v in vars(args).items() if k not in ("run", "seed_server")},
        "mix": "50% JSON strokes, 20% multipart PNG, 20% raw PNG, 10% malformed: "
        + ", ".join(MALFORMED),
        "ours": ours,
        "seed": seed,
        "vs_seed": compare(ours, seed),
        "targets": targets(ours["levels"], ours["memory"]),
        "cut_short": ours["cut_short"] or bool(seed and seed["cut_short"]),
        "max_seconds": args.max_seconds,
        "seconds": round(time.monotonic() - started, 1),
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
    }
    if not args.no_seed and seed is None:
        result["cut_short"] = True
    report(result)
    tag = "gpu-" + env["gpu"].split(" (")[0].replace(" ", "_") if gpu else "cpu"
    tag += "" if args.backend == "auto" else f"-{args.backend}"
    path = ROOT / "benchmarks" / "results" / f"serve_load-{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
