"""How a combination's finished folders reach the client from the worker that made them: the
worker trains in a private staging folder (`runs_in`); the run and its reports are then copied
into place (a worker that shares the client's folders) or zipped (`zipped`) and unpacked there
(`unpack`); either way a folder appears under its real name only whole (`put`: filled under a
hidden name, then renamed), and never over a finished run. `point_reports` makes the report
name the run's folder on the client rather than the worker's staging folder.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

from charlib.common.files import read_json, write_json
from charlib.workflow import pipeline

KINDS = ("runs", "reports")  # the folders a combination makes, as named inside a shipped zip


@contextmanager
def runs_in(folder: Path):
    """CHARLIB_RUNS_DIR=folder in this process (and so in the kernels it starts) for the block."""
    before = os.environ.get("CHARLIB_RUNS_DIR")
    os.environ["CHARLIB_RUNS_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CHARLIB_RUNS_DIR", None)
        else:
            os.environ["CHARLIB_RUNS_DIR"] = before


def zipped(made: dict[str, Path]) -> bytes:
    """The folders ({kind: folder}) as one zip: kind/<path inside the folder>."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for kind, folder in made.items():
            for f in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if f.is_file():
                    zf.write(f, f"{kind}/{f.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def unpack(shipped: bytes, into: dict[str, Path]) -> None:
    """A shipped zip into its folders on this machine ({kind: folder}), each put whole."""
    with zipfile.ZipFile(io.BytesIO(shipped)) as zf:
        for kind, folder in into.items():
            members = [m for m in zf.namelist() if m.startswith(f"{kind}/") and m[-1] != "/"]
            if members:
                put(folder, lambda new, m=members: _extract(zf, m, new))


def _extract(zf: zipfile.ZipFile, members: list[str], folder: Path) -> None:
    for member in members:
        relative = Path(member.partition("/")[2])
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"shipped file {member!r} points outside its folder")
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(zf.read(member))


def put(target: Path, fill) -> None:
    """`fill(folder)` a hidden sibling of target, then rename it to target, so target is never
    half-written. An unfinished folder there (this sweep's earlier attempt) is replaced; a
    finished run (holding metrics.json) never is: FileExistsError."""
    if (target / "metrics.json").is_file():
        raise FileExistsError(f"{target} holds a finished run; kept it, this result was dropped")
    tag = secrets.token_hex(4)
    incoming = target.with_name(f".{target.name}.incoming-{tag}")
    old = target.with_name(f".{target.name}.old-{tag}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fill(incoming)
        if target.exists():
            target.rename(old)
        try:
            incoming.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)
            raise
    finally:
        for leftover in (incoming, old):
            shutil.rmtree(leftover, ignore_errors=True)


def tidy(target: Path) -> None:
    """Remove hidden halves of target that an interrupted `put` left (a killed process)."""
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        if leftover.is_dir() and leftover.name.rpartition("-")[0].endswith((".incoming", ".old")):
            shutil.rmtree(leftover, ignore_errors=True)


def point_reports(reports: Path, run: str) -> None:
    """The run's report page and the index of runs, rewritten here: the summary the worker wrote
    names its staging folder, this one the run's folder on this machine."""
    record = read_json(reports / run / pipeline.RUN_RECORD, None)
    if record is None:
        return
    record["summary"] = pipeline.run_summary(run)
    write_json(reports / run / pipeline.RUN_RECORD, record)
    pipeline.write_run_page(record, reports / run)
    pipeline.write_overview(reports)
