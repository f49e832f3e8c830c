"""One meaning of a run argument (RUN_NAME, --run) everywhere: paths.resolve_run."""

import os

import pytest

from charlib.common.paths import is_latest, resolve_run, runs_dir
from charlib.workflow import pipeline

from conftest import CELL_TIMEOUT, snapshot


@pytest.fixture
def runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("CHARLIB_RUNS_DIR", str(runs))
    for age, name in enumerate(["new", "old"]):
        (runs / name).mkdir(parents=True)
        (runs / name / "best.pt").write_bytes(b"")
        os.utime(runs / name / "best.pt", (1e9 - age, 1e9 - age))
    return runs


def test_training_may_name_a_run_that_does_not_exist_yet(runs):
    assert resolve_run("fresh", trained=False) == runs / "fresh"
    assert not (runs / "fresh").exists()  # resolving creates nothing
    with pytest.raises(FileNotFoundError, match="fresh: no such run folder; train it first"):
        resolve_run("fresh")


def test_latest_means_the_same_for_training_and_prediction(runs):
    assert resolve_run(None, trained=False) == resolve_run("latest") == runs / "new"
    assert is_latest(None) and is_latest("latest") and not is_latest("new")


@pytest.mark.parametrize("bad", ["", "   ", 3, ["new"]])
def test_a_run_argument_of_the_wrong_kind_is_one_line(runs, bad):
    with pytest.raises(ValueError, match="a run is a name under runs/, a folder or None"):
        resolve_run(bad)


@pytest.mark.notebook
def test_notebook_03_refuses_to_start_the_latest_run_over(tiny_run, tmp_path):
    """RUN_NAME=None (the latest run) with RESUME=False would delete that run: refused."""
    before = snapshot(runs_dir())
    params = {"DATA": "synth-small", "RUN_NAME": None, "RESUME": False}
    with pytest.raises(pipeline.NotebookFailed, match="is the latest run .*RESUME=True"):
        pipeline.run_all(
            params, only=["03"], reports=tmp_path, progress=False, cell_timeout=CELL_TIMEOUT
        )
    assert snapshot(runs_dir()) == before  # every run untouched
