"""Where charlib keeps its files: data, cache, runs and reports (one place for each)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The source checkout when charlib runs from one, else the current directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def data_dir() -> Path:
    """Downloaded and generated datasets (`CHARLIB_DATA_DIR` overrides)."""
    return Path(os.environ.get("CHARLIB_DATA_DIR") or project_root() / "data")


def cache_dir() -> Path:
    """Decoded-dataset cache (`CHARLIB_CACHE_DIR` overrides); never inside a user's dataset."""
    return Path(os.environ.get("CHARLIB_CACHE_DIR") or data_dir() / "cache")


def runs_dir() -> Path:
    """One folder per training run."""
    return Path(os.environ.get("CHARLIB_RUNS_DIR") or project_root() / "runs")


LATEST = "latest"  # the run name that means "the newest run with best.pt", like None


def is_latest(run) -> bool:
    """Whether a run argument means "the latest trained run" (None or "latest")."""
    return run is None or run == LATEST


DEFAULT_RUN = "default"  # notebook 03's RUN_NAME
SMOKE_RUN = "smoke"  # the run smoke checks train and evaluate; each replaces the last


def run_for(run, smoke: bool):
    """The run a notebook works on: a smoke check takes runs/smoke in place of the default or
    the latest run, so it never writes into (or evaluates as) the user's work."""
    return SMOKE_RUN if smoke and (is_latest(run) or run == DEFAULT_RUN) else run


def new_run_name(prefix: str) -> str:
    """A run name no run or report has yet: '<prefix>-YYYYMMDD-HHMM', then -2, -3, ..."""
    import time

    base = f"{prefix}-{time.strftime('%Y%m%d-%H%M')}"
    name, n = base, 1
    while (runs_dir() / name).exists() or (reports_dir() / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def resolve_run(run=None, *, trained: bool = True) -> Path:
    """The folder of a run, the one meaning of RUN_NAME and --run everywhere.

    `run` is a name under runs/ (a relative name that is not a folder here, such as a sweep's
    "demo/LR-0.001"), a folder path, or None
    / "latest" for the newest run holding best.pt. trained=True (evaluate, predict) requires
    best.pt there; trained=False (training) returns a named folder that may not exist yet.
    """
    if is_latest(run):
        found = sorted(runs_dir().glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(
                f"no trained run in {runs_dir()}; train one first (make run, or notebook 03)"
            )
        return found[-1].parent
    if not isinstance(run, (str, os.PathLike)) or not str(run).strip():
        raise ValueError(f"a run is a name under runs/, a folder or None (the latest), got {run!r}")
    path = Path(run)
    if not path.is_dir() and not path.is_absolute():
        path = runs_dir() / path  # a name under runs/, e.g. "default" or "sweep/LR-0.001"
    if not trained:
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: no such run folder; train it first (notebook 03, `python -m charlib run`) "
            "or check the run name"
        )
    if not (path / "best.pt").is_file():
        raise FileNotFoundError(f"{path}: no best.pt there; train first (notebook 03) or fix --run")
    return path


def reports_dir() -> Path:
    """Executed notebooks and their HTML exports."""
    return project_root() / "reports"


def notebooks_dir() -> Path:
    """The numbered notebooks."""
    return project_root() / "notebooks"
