"""The REST API and the web pad: `python -m charlib serve` (FastAPI + uvicorn).

    POST /predict         one drawing: strokes (JSON), an image upload (multipart) or raw bytes
    POST /predict/batch   many: {"drawings": [...]} (JSON) or several multipart "files"
    GET  /health          model loaded, run, backend, device, limits
    GET  /classes         the codes and characters the model knows
    GET  /                the drawing pad (static HTML + JS, no CDN)      GET /docs  OpenAPI
    POST /mine            save a drawing with its right label (only with --save-to FOLDER)
    GET  /mine            whether saving is on, and the examples saved per character

The model is loaded once. Each request's input is prepared (decoded, the ink found, framed) in
a worker thread, at most one per CPU core; the model runs in one thread of its own that takes
every prepared image waiting and runs them as one batch (micro-batching: no added wait when
idle, bigger batches under load). The event loop only parses and answers.

Hardened by default: it binds 127.0.0.1; a body over `MAX_BODY` is refused before it is read
(413); an image's size is read from its header and refused past `MAX_PIXELS` before any pixel
is decoded (413); strokes are limited in count, points and canvas size, and every coordinate
must be a finite number on the canvas (422); unknown fields and query parameters are refused
(422); content types are checked (415). Every error is JSON, {"error": "<one sentence>"}, with
its 4xx status. Nothing a request sends is written to disk (multipart is parsed in memory),
except the drawings POST /mine saves when the server was started with `--save-to` (off by
default): there each save is a new file (`mine.save`), never one that was there.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image

from charlib.common import paths
from charlib.common.codes import code_to_char
from charlib.common.files import read_json
from charlib.common.paths import resolve_run
from charlib.data import mine
from charlib.data.sources import measured_on
from charlib.inference import export
from charlib.inference.infer import Predictor
from charlib.vision import images
from charlib.vision.strokes import CANVAS_SIZE, SCRIPTED, Strokes

MAX_BODY = 8 * 1024 * 1024  # bytes in a request body
MAX_PIXELS = 25_000_000  # pixels in an uploaded image (6000×4000 passes), read from its header
MAX_STROKES = 200  # strokes in one drawing
MAX_POINTS = 20_000  # points in one drawing, all strokes together
MAX_CANVAS = 4096  # px, the largest canvas side a drawing may claim
MAX_BATCH = 64  # drawings or files in one /predict/batch request
MAX_TOP_K = 1000  # above the class count it is capped to the class count
IMAGE_TYPES = frozenset(
    f"image/{t}" for t in ("png", "jpeg", "gif", "bmp", "webp", "tiff", "x-portable-graymap")
) | {"application/octet-stream"}
OPTIONS = ("top_k", "view")  # query parameters every predict request takes
STATIC = Path(__file__).with_name("static")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
FAILED = "the server failed on this request; its log has the details"  # a 500's whole answer


class Refused(Exception):
    """A request the server will not answer: an HTTP status and one sentence saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# Request bodies ------------------------------------------------------------------------------


def check_drawing(strokes, width, height) -> Strokes:
    """JSON values of one drawing -> Strokes, or Refused(422) naming what is wrong."""
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, int) or isinstance(side, bool) or not 1 <= side <= MAX_CANVAS:
            raise Refused(422, f"'{name}' must be an integer from 1 to {MAX_CANVAS} px")
    if not isinstance(strokes, list):
        raise Refused(422, "'strokes' must be a list of strokes, each a list of [x, y] points")
    if len(strokes) > MAX_STROKES:
        raise Refused(422, f"too many strokes ({len(strokes):,}; the limit is {MAX_STROKES})")
    if any(not isinstance(s, list) for s in strokes):
        raise Refused(422, "each stroke must be a list of [x, y] points")
    points = sum(len(s) for s in strokes)
    if points > MAX_POINTS:
        raise Refused(422, f"too many points ({points:,}; the limit is {MAX_POINTS:,})")
    for s in strokes:
        for p in s:
            if not (isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p)):
                raise Refused(422, f"each point must be [x, y], two finite numbers; got {p!r:.40}")
            if not (0 <= p[0] <= width and 0 <= p[1] <= height):
                raise Refused(
                    422, f"point {p} lies off the {width}×{height} canvas (0..width, 0..height)"
                )
    return Strokes(strokes, width=width, height=height)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def json_object(body: bytes, allowed: set[str]) -> dict:
    """A JSON body -> its object, refused when it is not one or holds unknown fields."""
    import json

    def no_constants(name):  # NaN, Infinity: not JSON
        raise ValueError(f"{name} is not a JSON number")

    try:
        data = json.loads(body, parse_constant=no_constants)
    except (ValueError, RecursionError) as e:
        raise Refused(400, f"the body is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(data, dict):
        raise Refused(422, 'the JSON body must be an object, e.g. {"strokes": [...]}')
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise Refused(422, f"unknown field '{unknown[0]}'; expected {', '.join(sorted(allowed))}")
    return data


def multipart(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """A multipart/form-data body -> [(field name, file name, bytes)], parsed in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise Refused(400, "the multipart Content-Type has no boundary")
    parts, header, value, data = [], [b"", b""], {}, []

    def on_header_field(d, start, end):
        header[0] += d[start:end]

    def on_header_value(d, start, end):
        header[1] += d[start:end]

    def on_header_end():
        value[header[0].lower()] = header[1]
        header[:] = [b"", b""]

    def on_part_end():
        _, disposition = parse_options_header(value.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
        parts.append((name, filename, b"".join(data)))
        value.clear(), data.clear()

    callbacks = {
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": lambda d, start, end: data.append(d[start:end]),
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks, max_size=MAX_BODY)
        parser.write(body)
        parser.finalize()
    except Exception as e:  # python-multipart raises its own errors for malformed bodies
        raise Refused(400, f"the multipart body is malformed ({str(e)[:80]})") from None
    return parts


def image_bytes(data: bytes, name: str) -> bytes:
    """An uploaded image's bytes, its header checked (an image, at most MAX_PIXELS)."""
    try:
        images.probe(data, MAX_PIXELS)
    except images.BadImage as e:
        if e.reason == images.TOO_LARGE:
            detail = str(e).removeprefix(f"{images.TOO_LARGE}: ")
            raise Refused(413, f"{name} is too large ({detail}); send a smaller image") from None
        if e.reason == images.EMPTY:
            raise Refused(422, f"{name} is empty; send a PNG or JPEG of the character") from None
        raise Refused(422, f"{name} is not an image Pillow can read ({e.reason})") from None
    return data


def options(query, body: dict | None = None) -> tuple[int, bool]:
    """top_k and view from the query string (and a JSON body's fields), checked."""
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise Refused(422, f"unknown query parameter '{unknown[0]}'; expected top_k or view")
    raw_k, raw_view = query.get("top_k", 5), query.get("view", False)
    if body:
        raw_k, raw_view = body.get("top_k", raw_k), body.get("view", raw_view)
    if isinstance(raw_k, str) and raw_k.strip().lstrip("+").isdigit():
        raw_k = int(raw_k)
    if not isinstance(raw_k, int) or isinstance(raw_k, bool) or raw_k < 1:
        raise Refused(422, f"top_k must be a positive integer, got {raw_k!r:.40}")
    views = {"true": True, "1": True, "false": False, "0": False}
    view = views.get(raw_view.lower()) if isinstance(raw_view, str) else raw_view
    if not isinstance(view, bool):
        raise Refused(422, f"view must be true or false, got {raw_view!r:.40}")
    return min(raw_k, MAX_TOP_K), view


async def read_body(request) -> bytes:
    """The request body, refused (413) past MAX_BODY: by Content-Length before reading any,
    or as soon as a streamed body passes it."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise Refused(413, f"the body is {length} bytes; the limit is {MAX_BODY:,} (8 MB)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"the body is over the {MAX_BODY:,}-byte (8 MB) limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise Refused(422, "the body is empty; send strokes as JSON, or an image")
    return body


def media_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def single_input(request):
    """One /predict request -> (the drawing or image bytes, top_k, view)."""
    kind, body = media_type(request), await read_body(request)
    if kind == "application/json":
        data = json_object(body, {"strokes", "width", "height", *OPTIONS})
        drawing = check_drawing(
            data.get("strokes"), data.get("width", CANVAS_SIZE), data.get("height", CANVAS_SIZE)
        )
        return drawing, *options(request.query_params, data)
    if kind == "multipart/form-data":
        parts = multipart(body, request.headers["content-type"])
        files = _only_field(parts, "file")
        if len(files) != 1:
            raise Refused(422, f"send exactly one 'file' part, got {len(files)}")
        name, data = files[0]
        top_k, view = options(request.query_params)
        return image_bytes(data, f"file '{name}'"), top_k, view
    if kind in IMAGE_TYPES:
        top_k, view = options(request.query_params)
        return image_bytes(body, "the image"), top_k, view
    raise Refused(415, _unsupported(kind))


async def batch_inputs(request):
    """One /predict/batch request -> (drawings or image bytes, top_k, view)."""
    kind, body = media_type(request), await read_body(request)
    if kind == "application/json":
        data = json_object(body, {"drawings", *OPTIONS})
        drawings = data.get("drawings")
        if not isinstance(drawings, list) or not 1 <= len(drawings) <= MAX_BATCH:
            raise Refused(422, f"'drawings' must be a list of 1 to {MAX_BATCH} drawings")
        inputs = []
        for i, d in enumerate(drawings):
            if not isinstance(d, dict) or set(d) - {"strokes", "width", "height"}:
                raise Refused(422, f"drawings[{i}] must be {{strokes, width, height}}")
            try:
                w, h = d.get("width", CANVAS_SIZE), d.get("height", CANVAS_SIZE)
                inputs.append(check_drawing(d.get("strokes"), w, h))
            except Refused as e:
                raise Refused(e.status, f"drawings[{i}]: {e.message}") from None
        return inputs, *options(request.query_params, data)
    if kind == "multipart/form-data":
        files = _only_field(multipart(body, request.headers["content-type"]), "files")
        if not 1 <= len(files) <= MAX_BATCH:
            raise Refused(422, f"send 1 to {MAX_BATCH} 'files' parts, got {len(files)}")
        top_k, view = options(request.query_params)
        inputs = [image_bytes(d, f"files[{i}] '{n}'") for i, (n, d) in enumerate(files)]
        return inputs, top_k, view
    raise Refused(415, _unsupported(kind, batch=True))


def _only_field(parts, field: str) -> list[tuple[str, bytes]]:
    unknown = sorted({name for name, _, _ in parts} - {field})
    if unknown:
        raise Refused(422, f"unknown form field '{unknown[0]}'; send the image(s) as '{field}'")
    return [(filename or field, data) for _, filename, data in parts]


def _unsupported(kind: str, batch: bool = False) -> str:
    what = "multipart 'files'" if batch else "an image (multipart 'file' or raw bytes)"
    return f"unsupported Content-Type '{kind or 'none'}'; send JSON strokes or {what}"


# The model -----------------------------------------------------------------------------------


class Batcher:
    """One thread runs the model: it takes every prepared image waiting and runs one batch."""

    def __init__(self, probabilities, max_rows: int = 256):
        self.probabilities, self.max_rows = probabilities, max_rows
        self.waiting: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="charlib-model", daemon=True)
        self.thread.start()

    async def __call__(self, stack: np.ndarray) -> np.ndarray:
        future: Future = Future()
        self.waiting.put((stack, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self.waiting.put(None)
        self.thread.join(10)

    def _loop(self) -> None:
        while (item := self.waiting.get()) is not None:
            jobs, rows = [item], len(item[0])
            while rows < self.max_rows:
                try:
                    more = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.waiting.put(None)
                    break
                jobs.append(more)
                rows += len(more[0])
            self._run(jobs)

    def _run(self, jobs) -> None:
        try:
            probs = self.probabilities(np.concatenate([stack for stack, _ in jobs]))
        except Exception as e:  # every waiting request learns it failed
            for _, future in jobs:
                future.set_exception(e)
            return
        start = 0
        for stack, future in jobs:
            future.set_result(probs[start : start + len(stack)])
            start += len(stack)


class Service:
    """A loaded Predictor shared by every request: prepare in threads, predict in batches."""

    def __init__(self, predictor: Predictor, *, run: str, backend: str, save_to=None):
        import anyio

        self.predictor, self.run, self.backend = predictor, run, backend
        self.save_to = None if save_to is None else Path(save_to)  # None: saving is off
        self.batcher = Batcher(predictor.probabilities)
        self.preparing = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))

    async def predict(self, inputs: list, top_k: int, view: bool) -> list[dict]:
        import anyio

        try:
            seen = await anyio.to_thread.run_sync(
                lambda: [self.predictor.prepare(x) for x in inputs], limiter=self.preparing
            )
        except ValueError as e:  # an image that passed its header check but not decoding
            raise Refused(422, f"the image cannot be read: {e}") from None
        drawn = [img for img in seen if img is not None]
        classes = len(self.predictor.classes)
        probs = await self.batcher(np.stack(drawn)) if drawn else np.zeros((0, classes))
        results = self.predictor.results(seen, probs, top_k)
        return [self.answer(p, view) for p in results]

    @staticmethod
    def answer(prediction, view: bool) -> dict:
        out = {"status": prediction.status, "guesses": list(prediction)}
        if view:
            out["view"] = png_data_url(prediction.image) if prediction.image is not None else None
        return out

    async def save(self, drawing: Strokes, label, guess) -> dict:
        """Keep a drawing and its right label under save_to/<code>/ (`mine.save`)."""
        import anyio

        if self.save_to is None:
            raise Refused(403, "saving is off; start the server with --save-to data/mine")
        try:
            code = mine.label_code(label, self.predictor.classes)
        except ValueError as e:
            raise Refused(422, str(e)) from None
        note = {"run": self.run, "guess": guess} if guess is not None else {"run": self.run}

        def keep() -> Path:
            image = self.predictor.prepare(drawing)
            return mine.save(drawing, code, image=image, dest=self.save_to, note=note)

        try:
            path = await anyio.to_thread.run_sync(keep, limiter=self.preparing)
        except ValueError as e:  # nothing drawn
            raise Refused(422, str(e)) from None
        except OSError as e:
            raise Refused(507, str(e)) from None
        return {"saved": f"{path.parent.name}/{path.name}", **self.examples()}

    def examples(self) -> dict:
        found = mine.counts(self.save_to) if self.save_to is not None else {}
        return {
            "enabled": self.save_to is not None,
            "counts": {code_to_char(c): n for c, n in found.items()},
            "summary": mine.counts_line(found),
        }

    def health(self) -> dict:
        p = self.predictor
        return {
            "status": "ok",
            "saving": self.save_to is not None,
            "model_loaded": True,
            "run": self.run,
            "about": about(p.run_dir),
            "backend": self.backend,
            "device": str(p.device),
            "classes": len(p.classes),
            "image_size": p.size,
            "limits": {
                "body_bytes": MAX_BODY,
                "image_pixels": MAX_PIXELS,
                "strokes": MAX_STROKES,
                "points": MAX_POINTS,
                "canvas_side": MAX_CANVAS,
                "batch": MAX_BATCH,
            },
        }


def png_data_url(img: np.ndarray) -> str:
    """A small uint8 image as a data:image/png;base64 URL."""
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def about(run_dir: Path) -> str:
    """'the reference model: ResNet-18, 87.1% on the EMNIST test split', or a run's evaluated
    accuracy with its data named; empty when the run was never evaluated."""
    if run_dir.name == paths.REFERENCE_RUN:
        return f"the reference model: {paths.reference_summary()}"
    metrics = read_json(run_dir / "metrics.json", {})
    if "accuracy" not in metrics:
        return ""
    return f"{metrics['accuracy']:.1%} on {measured_on(metrics)}"


def load(run=None, backend: str = "auto", device: str = "auto", save_to=None) -> Service:
    """Load the run's model once. backend "auto": torch on a GPU; on the CPU static int8 ONNX
    (calibrated on the run's training images the first time), or fp32 ONNX when those images
    cannot be found (said in one line)."""
    from charlib.common.env import device_name

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    run_dir = resolve_run(run)
    if backend == "auto" and device_name(device).startswith("cuda"):
        backend = "torch"
    elif backend == "auto":
        backend = "onnx-int8"
        if not export.current(run_dir, export.INT8):
            print("charlib serve: int8 model: calibrating on training images (once)", flush=True)
            try:
                export.int8(run_dir)
            except (ValueError, OSError) as e:
                print(f"charlib serve: serving fp32 ONNX instead of int8 ({e})", flush=True)
                backend = "onnx"
    predictor = Predictor.from_run(run_dir, device=device, backend=backend)
    for n in (1, 2, 4, 8):  # warm up each batch shape: the first visitors wait for nothing
        predictor.predict_many([SCRIPTED["A"]] * n)
    return Service(predictor, run=run_dir.name, backend=backend, save_to=save_to)


# The app -------------------------------------------------------------------------------------

STROKES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["strokes"],
    "properties": {
        "strokes": {
            "type": "array",
            "maxItems": MAX_STROKES,
            "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "description": f"strokes of [x, y] points in px; at most {MAX_POINTS:,} points",
        },
        "width": {"type": "integer", "default": CANVAS_SIZE, "maximum": MAX_CANVAS},
        "height": {"type": "integer", "default": CANVAS_SIZE, "maximum": MAX_CANVAS},
        "top_k": {"type": "integer", "default": 5, "minimum": 1},
        "view": {"type": "boolean", "default": False},
    },
    "example": {"strokes": [[[140, 40], [80, 240]], [[140, 40], [200, 240]]]},
}
UPLOAD = {"type": "string", "format": "binary"}


def _body(content: dict) -> dict:
    """An OpenAPI request body: required, with these media types."""
    return {"requestBody": {"required": True, "content": content}}


SAVE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["strokes", "label"],
    "properties": {
        **{k: STROKES_SCHEMA["properties"][k] for k in ("strokes", "width", "height")},
        "label": {"type": "string", "description": "the right character"},
        "guess": {"type": "string", "description": "what the model answered"},
    },
}
SAVE_BODY = _body({"application/json": {"schema": SAVE_SCHEMA}})
SINGLE_BODY = _body(
    {
        "application/json": {"schema": STROKES_SCHEMA},
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": UPLOAD}, "required": ["file"]}
        },
        "image/png": {"schema": UPLOAD},
        "image/jpeg": {"schema": UPLOAD},
    }
)
BATCH_BODY = _body(
    {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["drawings"],
                "properties": {"drawings": {"type": "array", "maxItems": MAX_BATCH}},
            }
        },
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"files": {"type": "array"}}}
        },
    }
)
QUERY = [
    {"name": "top_k", "in": "query", "schema": {"type": "integer", "default": 5, "minimum": 1}},
    {"name": "view", "in": "query", "schema": {"type": "boolean", "default": False}},
]


def create_app(service: Service):
    """The FastAPI app around a loaded Service (see the module's docstring)."""

    @asynccontextmanager
    async def warm(app):  # one request's whole path (threads, batcher) before the first visitor
        await service.predict([SCRIPTED["A"]], 5, False)
        yield

    app = FastAPIOffline(  # FastAPI with /docs and /redoc served locally: they work offline
        lifespan=warm,
        title="charlib",
        summary="Handwritten character recognition: draw or upload a character, get the top-k.",
        version="1",
        favicon_url="/static/favicon.svg",
    )
    add_error_handlers(app)

    @app.post("/predict", openapi_extra={**SINGLE_BODY, "parameters": QUERY})
    async def predict(request: Request) -> dict:
        """Top-k guesses for one drawing (JSON strokes) or image (multipart 'file' or raw)."""
        start = time.perf_counter()
        x, top_k, view = await single_input(request)
        (result,) = await service.predict([x], top_k, view)
        return {**result, "ms": _ms(start), "run": service.run, "backend": service.backend}

    @app.post("/predict/batch", openapi_extra={**BATCH_BODY, "parameters": QUERY})
    async def predict_batch(request: Request) -> dict:
        """Top-k guesses for up to 64 drawings (JSON 'drawings') or images ('files' parts)."""
        start = time.perf_counter()
        inputs, top_k, view = await batch_inputs(request)
        results = await service.predict(inputs, top_k, view)
        return {"results": results, "ms": _ms(start), "run": service.run}

    @app.get("/health")
    async def health() -> dict:
        """Whether the model is loaded, which run and backend, and the request limits."""
        return service.health()

    @app.get("/classes")
    async def classes() -> dict:
        """The classes the model knows: ASCII code and character (999 is 'unknown')."""
        return {
            "classes": [{"code": c, "char": code_to_char(c)} for c in service.predictor.classes]
        }

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    add_mine_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def add_mine_routes(app, service: Service) -> None:
    """POST /mine (save a corrected drawing, with --save-to only) and GET /mine (counts)."""

    @app.post("/mine", openapi_extra=SAVE_BODY)
    async def save(request: Request) -> dict:
        """Save a drawing with its right label (a wrong guess corrected) for fine-tuning;
        only when the server was started with --save-to FOLDER."""
        if media_type(request) != "application/json":
            raise Refused(415, "send the drawing and its label as JSON")
        data = json_object(
            await read_body(request), {"strokes", "width", "height", "label", "guess"}
        )
        w, h = data.get("width", CANVAS_SIZE), data.get("height", CANVAS_SIZE)
        drawing = check_drawing(data.get("strokes"), w, h)
        label, guess = data.get("label"), data.get("guess")
        if label is not None and not isinstance(label, str):
            raise Refused(422, f"'label' must be the character as a string, got {label!r:.40}")
        if guess is not None and not (isinstance(guess, str) and len(guess) <= 16):
            raise Refused(422, "'guess' must be the model's answer as a short string")
        return await service.save(drawing, label, guess)

    @app.get("/mine")
    async def examples() -> dict:
        """Whether saving is on, and how many drawings are saved per character."""
        return service.examples()


PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def add_error_handlers(app) -> None:
    """Every error as {"error": "<one sentence>"} with its status; 500s say no more than that."""
    import logging

    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    def error(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(Refused)
    async def refused(request, e: Refused):
        return error(e.status, e.message)

    @app.exception_handler(HTTPException)
    async def http(request, e: HTTPException):
        if e.status_code == 404:
            return error(404, f"no such page {request.url.path}; the API is described at /docs")
        if e.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}")
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(ClientDisconnect)
    async def gone(request, e: ClientDisconnect):
        """A client that hangs up mid-body (a closed tab, a dropped upload) is no failure of
        ours: one line at INFO (not shown at the server's default level), never a traceback."""
        logging.getLogger("charlib.apps.serve").info(
            "client disconnected during %s %s; nothing answered", request.method, request.url.path
        )
        return error(400, "the client disconnected before the request body arrived")

    @app.exception_handler(Exception)
    async def crashed(request, e: Exception):
        logging.getLogger("charlib.apps.serve").exception(
            "%s %s failed", request.method, request.url
        )
        return error(500, FAILED)


# Running it ----------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket; a clear error when the port is taken or the host unknown."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns TCP_NODELAY on only for sockets that say TCP; without it
    # every response after a connection's first waits ~40 ms for a delayed acknowledgement.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise OSError(
                f"port {port} on {host} is already in use; pass --port with a free one "
                "(or stop the server using it)"
            ) from None
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(
    run=None, *, host: str = "127.0.0.1", port: int = 8000, backend: str = "auto", save_to=None
) -> None:
    """Load the run, bind host:port and serve until Ctrl+C (`python -m charlib serve`);
    `save_to` (a folder, e.g. data/mine) lets the page save corrected drawings there."""
    import uvicorn

    sock = listen(host, port)  # a taken port fails before the model loads
    try:
        if save_to is not None:
            check_writable(Path(save_to))
        service = load(run, backend, save_to=save_to)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"charlib serve: run {service.run} ({len(service.predictor.classes)} classes, "
        f"{service.backend} on {service.predictor.device})\n"
        f"  the pad:  http://{shown}:{port}/\n  the API:  http://{shown}:{port}/docs\n"
        "  Ctrl+C stops it",
        flush=True,
    )
    if save_to is not None:
        print(f"  saving:   corrected drawings go to {save_to}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"  note: listening on {host}: other machines can reach it", flush=True)
    config = uvicorn.Config(
        create_app(service), log_level="warning", access_log=False, limit_concurrency=256
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.batcher.close()
        sock.close()


def check_writable(folder: Path) -> None:
    """Refuse at start-up, in one line, a --save-to folder that cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".charlib-write-test-{os.getpid()}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as e:
        raise OSError(
            f"--save-to {folder} is not writable ({e.strerror or e}); pick a folder you can write"
        ) from None
