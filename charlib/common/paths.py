"""Where charlib keeps its files: data, cache, runs and reports (one place for each)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from charlib.common.files import file_digest


def project_root() -> Path:
    """The source checkout when charlib runs from one, else the current directory."""
    here = Path(__file__).resolve().parents[2]
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


REFERENCE_RUN = "reference"  # the shipped model trained on real handwriting (EMNIST ByClass)
# The shipped files, package data: copied into runs/reference/ on first use, never written to.
REFERENCE_FILES = ("best.pt", "params.json", "history.json", "card.json", "CARD.md")
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
    "demo/LR-0.001"), a folder path, "reference" (the shipped model, see `reference_run`), or
    None / "latest" for the newest run holding best.pt (the reference model when there is none).
    trained=True (evaluate, predict) requires best.pt there; trained=False (training) returns a
    named folder that may not exist yet.
    """
    if is_latest(run):
        found = latest_trained()
        if found is not None:
            return found
        if reference_dir() is None:
            raise FileNotFoundError(
                f"no trained run in {runs_dir()}; train one first (make run, or notebook 03)"
            )
        _say_once(
            f"no trained run in {runs_dir()}: using the reference model ({reference_summary()}); "
            "train your own with make run"
        )
        run = REFERENCE_RUN
    if run == REFERENCE_RUN:
        return reference_run()
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


def latest_trained() -> Path | None:
    """The newest run folder holding best.pt that the user trained (not the reference copy)."""
    found = [p for p in runs_dir().glob("*/best.pt") if p.parent.name != REFERENCE_RUN]
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def reference_dir() -> Path | None:
    """The shipped reference model's files in the package (None in a build that lacks them)."""
    here = Path(__file__).resolve().parent / "reference"
    return here if all((here / n).is_file() for n in REFERENCE_FILES) else None


def reference_card() -> dict:
    """The reference model's card: data, recipe, accuracy, size, sha256 of best.pt."""
    import json

    shipped = reference_dir()
    if shipped is None:
        raise FileNotFoundError("this charlib has no reference model (charlib/common/reference/)")
    return json.loads((shipped / "card.json").read_text())


def reference_summary() -> str:
    """'ResNet-18, 87.1% on the EMNIST test split': one line for notices and pages."""
    card = reference_card()
    return f"{card['model']}, {card['accuracy']:.1%} on the {card['measured_on']}"


def reference_run() -> Path:
    """runs/reference/: a copy of the shipped reference model (checked against its card's
    sha256), so evaluating, exporting or explaining it writes under runs/, never into the
    package. A copy that differs from the shipped file is replaced by it."""
    shipped = reference_dir()
    if shipped is None:
        raise FileNotFoundError(
            "this charlib has no reference model (charlib/common/reference/); reinstall "
            "charlib, or train your own run (make run) and name it"
        )
    expected = reference_card()["sha256"]
    target = runs_dir() / REFERENCE_RUN
    copy = target / "best.pt"
    if copy.is_file() and file_digest(copy) == expected:
        return target
    if file_digest(shipped / "best.pt") != expected:
        raise ValueError(
            f"{shipped / 'best.pt'} does not match its card's sha256; reinstall charlib"
        )
    target.mkdir(parents=True, exist_ok=True)
    for name in REFERENCE_FILES:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(shipped / name, tmp)
        os.replace(tmp, target / name)
    return target


_said: set[str] = set()


def _say_once(line: str) -> None:
    """A one-line notice on stderr, once per process."""
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)


def real_handwriting() -> Path | None:
    """Real handwriting at hand: $CHARLIB_SHARED_DATA/emnist-byclass (default ../shared/data
    beside the project), else a downloaded data/emnist; None when neither is here."""
    shared = os.environ.get("CHARLIB_SHARED_DATA") or project_root().parent / "shared" / "data"
    for folder in (Path(shared) / "emnist-byclass", data_dir() / "emnist"):
        if (folder / "test.zip").is_file() or (folder / "test").is_dir():
            return folder
    return None


def recorded_data(source):
    """The data a run records (params["data"]) where it can be read here: a recorded EMNIST
    folder that this machine lacks (the reference model's, trained elsewhere) is the EMNIST at
    hand (`real_handwriting`); anything else as recorded."""
    if (
        source is None
        or Path(str(source)).exists()
        or "emnist" not in Path(str(source)).name.lower()
    ):
        return source
    return real_handwriting() or source


def reports_dir() -> Path:
    """Executed notebooks and their HTML exports."""
    return project_root() / "reports"


def notebooks_dir() -> Path:
    """The numbered notebooks."""
    return project_root() / "notebooks"
