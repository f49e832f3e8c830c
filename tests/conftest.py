"""Shared fixtures: tiny generated datasets, isolated data/cache folders, the shared EMNIST data."""

from __future__ import annotations

import io
import json
import os
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def isolated_dirs(tmp_path_factory):
    """Caches, generated data and runs go to a per-session temp folder, never into the checkout."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("cache", "data", "runs"):
            mp.setenv(f"CHARLIB_{name.upper()}_DIR", str(base / name))
        yield base


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/emnist-byclass (CHARLIB_SHARED_DATA); a skip, or a failure in CI."""
    base = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    path = base / "emnist-byclass"
    if not (path / "train.zip").is_file():
        message = f"shared EMNIST data not found at {path}; set CHARLIB_SHARED_DATA"
        if os.environ.get("CHARLIB_REQUIRE_SHARED_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def glyph(code: int, size: int = 28, *, seed: int = 0, dark_on_light: bool = True) -> np.ndarray:
    """A distinct, recognisable uint8 image per class: a bar whose position encodes the code."""
    rng = np.random.default_rng([code, seed])
    img = np.zeros((size, size), np.uint8)
    row = 3 + code % (size - 8)
    img[row : row + 3, 4 : size - 4] = 255
    img[4 : size - 4, 3 + (code * 7) % (size - 8)] = 255
    img = np.clip(img.astype(int) + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
    return 255 - img if dark_on_light else img


def png_bytes(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if mode:
        img = img.convert(mode)
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_split_files(codes=(65, 66, 100), per_class=4, size=28, seed=0) -> dict[str, bytes]:
    """'<code>/<i>.png' -> PNG bytes, dark on light like AlphaNum."""
    return {
        f"{code}/{i}.png": png_bytes(glyph(code, size, seed=seed * 100 + i))
        for code in codes
        for i in range(per_class)
    }


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def make_dataset(tmp_path):
    """Build a dataset in tmp_path: layout 'folders' or 'zips', optional extra files per split."""

    def build(layout="folders", codes=(65, 66, 100), per_class=4, size=28, extra=None, name="ds"):
        root = tmp_path / name
        for s, split in enumerate(("train", "validation", "test")):
            files = make_split_files(codes, per_class, size, seed=s)
            files.update((extra or {}).get(split, {}))
            if layout == "folders":
                write_folder(root / split, files)
            else:
                write_zip(root / f"{split}.zip", files)
        return root

    return build


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def train_tiny(run_dir: Path) -> dict | None:
    """A 1-epoch CPU run on 4 images per class of synth-small (a few seconds); reused if there.

    It selects on the whole validation split, so evaluation can be checked against training.
    """
    from charlib.data.loading import load_dataset
    from charlib.training import train

    run_dir = Path(run_dir)
    if (run_dir / "best.pt").is_file():
        return None
    ds = load_dataset("synth-small", progress=False)
    return train.fit(
        ds.train.subset(4, 0),
        ds.validation,
        run_dir=run_dir,
        recipe="fast",
        device="cpu",
        epochs=1,
        stem="imagenet",
        batch_size=32,  # 11 steps: enough for the one-cycle schedule
        progress=False,
        data_source="synth-small",
    )


@pytest.fixture(scope="session")
def tiny_run(isolated_dirs) -> Path:
    """runs/tiny, trained once per session by `train_tiny`: every test that needs a trained run
    shares it (tests may add files to it, e.g. metrics.json or model.onnx, never remove any)."""
    run_dir = isolated_dirs / "runs" / "tiny"
    train_tiny(run_dir)
    return run_dir


# The notebooks run once per session, all five, through `charlib run --smoke` with these.
SMOKE_PARAMS = {
    "SEED": 1,
    "SAMPLES_PER_CLASS": 3,
    "AUGMENTATION": {"rotation": 10.0},  # 02 must preview, and 03 train with, exactly this
}
CELL_TIMEOUT = 300  # s per cell in tests: a hung kernel fails the test instead of hanging CI


def hashes(root: Path, *, skip=()) -> dict[str, str]:
    """sha256 of every file under root (paths relative), leaving out those under `skip`."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(p.is_relative_to(root / s) for s in skip)
    }


@pytest.fixture(scope="session")
def smoke_cli(isolated_dirs, tiny_run):
    """`charlib run --smoke` beside a user's trained run (runs/tiny) and its reports: the
    NotebookResults by name, and hashes of everything else in runs/ and reports/ before/after."""
    from charlib.cli import main
    from charlib.workflow import pipeline

    reports = isolated_dirs / "reports"
    (reports / "tiny").mkdir(parents=True, exist_ok=True)
    (reports / "tiny" / "03_train_gpu.html").write_text("<p>the user's report</p>")
    # the smoke run's own folders; the index lists every run; runs/reference is a copy of the
    # shipped model that notebook 04 makes to score it beside the run (BESIDE), not the user's
    skip = ("smoke", "index.html", "reference")
    before = hashes(isolated_dirs / "runs", skip=skip) | hashes(reports, skip=skip)
    given = [x for k, v in SMOKE_PARAMS.items() for x in ("-p", f"{k}={v!r}")]
    args = ["run", "--smoke", "--out", str(reports), "--cell-timeout", str(CELL_TIMEOUT)]
    if main([*args, *given]) != 0:
        pytest.fail("the smoke pipeline failed (its error is in the captured stderr)")
    after = hashes(isolated_dirs / "runs", skip=skip) | hashes(reports, skip=skip)
    record = json.loads((reports / "smoke" / pipeline.RUN_RECORD).read_text())
    results = {
        n["name"]: pipeline.NotebookResult(
            n["name"],
            reports / "smoke" / f"{n['name']}.ipynb",
            reports / "smoke" / n["html"],
            n["seconds"],
            n["ok"],
            n["error"],
        )
        for n in record["notebooks"]
    }
    return results, before, after


@pytest.fixture(scope="session")
def smoke_reports(smoke_cli):
    """{notebook name: NotebookResult} of the five notebooks run once in smoke mode."""
    return smoke_cli[0]


class _Evil:
    """Unpickling this runs `touch <marker>`: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil_checkpoint(path: Path, marker: Path) -> Path:
    """A file that looks like a charlib checkpoint but runs a command when unpickled."""
    import pickle

    from charlib.training import checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "model": _Evil(marker)}, f)
    return path


class RangeSender(BaseHTTPRequestHandler):
    """A fake download server's handler base: `_send` a body (cut short on request, as a dropped
    transfer would be), quietly."""

    def _send(self, code: int, body: bytes, headers=None, cut: int | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # The full length is announced even when the body is cut, as a dropped transfer would.
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass
