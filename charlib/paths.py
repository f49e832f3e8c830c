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


def run_path(run) -> Path:
    """A run folder as given, or runs/<run> for a bare name that is not a folder here."""
    path = Path(run)
    if not path.is_dir() and len(path.parts) == 1:
        path = runs_dir() / path
    return path


def reports_dir() -> Path:
    """Executed notebooks and their HTML exports."""
    return project_root() / "reports"


def notebooks_dir() -> Path:
    """The numbered notebooks."""
    return project_root() / "notebooks"
