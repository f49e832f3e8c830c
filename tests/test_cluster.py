"""Sweeps on a Dask cluster: bad --cluster values and a DATA folder a worker lacks refused in one
line before anything is written; results shipped back as files or written in place; a worker
that dies recorded while the others go on; Ctrl+C leaving no half-written run. These run on a
two-worker cluster on 127.0.0.1 whose workers fake the notebooks (seconds, not minutes); the
real notebooks on `--cluster local:2` are checked against the same sweep run here in
tests/test_sweep.py (sharing its sweep)."""

import json
import logging
import time

import psutil
import pytest
from browser_helpers import free_port

from charlib.cli import main
from charlib.common import paths
from charlib.workflow import pipeline, sweep

# Worker processes and a scheduler: out of `make test-fast`.
pytestmark = pytest.mark.slow

DIES = 0.5  # the LR whose (fake) notebook kills its worker process
HANGS = 0.003  # the LR whose fake notebook starts a kernel that never ends
STOPPED = "stopped/"  # the sweep where the others wait for that kernel to start


def fake_notebooks():
    """A worker plugin that replaces notebooks 03 and 04 on each worker by a fake writing what
    they would (a run with metrics.json, a report with run.json) in a moment; LR=DIES kills the
    worker's process, as running out of memory would."""
    from distributed import WorkerPlugin

    class FakeNotebooks(WorkerPlugin):
        name = "charlib-fake-notebooks"

        def setup(self, worker):
            from charlib.workflow import pipeline

            pipeline.run_all = self.run_all

        @staticmethod
        def run_all(params, only=None, reports=None, **kw):
            import json
            import os
            import subprocess
            import sys
            import time
            from pathlib import Path

            from charlib.common import paths

            if params.get("LR") == DIES:
                os._exit(1)
            hung = Path(os.environ["CHARLIB_DATA_DIR"]).parent / "hung-kernels"
            if params.get("LR") == HANGS:  # a kernel (a child process) that never ends
                kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                hung.mkdir(exist_ok=True)
                (hung / str(kernel.pid)).touch()
                kernel.wait()
                raise RuntimeError("Kernel died while waiting for execute reply.")
            if params["RUN_NAME"].startswith(STOPPED):  # the others end once it runs
                for _ in range(100):
                    if hung.is_dir() and any(hung.iterdir()):
                        break
                    time.sleep(0.1)
            run = paths.resolve_run(params["RUN_NAME"], trained=False)
            run.mkdir(parents=True, exist_ok=True)
            (run / "best.pt").write_bytes(b"weights")
            facts = {"lr": params.get("LR"), "stem": "small", "img_size": 28, "recipe": "fast"}
            (run / "params.json").write_text(json.dumps(facts))
            history = [{"epoch": 1, "val_acc": 0.5, "seconds": 1.0}]
            (run / "history.json").write_text(json.dumps(history))
            (run / "metrics.json").write_text(json.dumps({"accuracy": params.get("LR", 0)}))
            page = Path(reports) / params["RUN_NAME"]
            page.mkdir(parents=True, exist_ok=True)
            (page / "04_evaluate.html").write_text("<p>evaluated</p>")
            record = {"run": params["RUN_NAME"], "started": "", "status": "ok", "error": ""}
            record |= {"parameters": {}, "notebooks": [], "summary": {"run folder": str(run)}}
            (page / "run.json").write_text(json.dumps(record))
            return []

    return FakeNotebooks()


@pytest.fixture(scope="module")
def fake_cluster(isolated_dirs):
    """A scheduler on 127.0.0.1 with two one-thread workers that fake the notebooks, as
    `dask scheduler` + `dask worker` would give (with allowed-failures 0, as docs/clusters.md
    sets); its address. Closed whatever happens."""
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as local,
        Client(local) as client,
    ):
        client.register_plugin(fake_notebooks())
        yield local.scheduler_address


@pytest.fixture
def no_compare(monkeypatch):
    """Notebook 06 left out (tests/test_sweep.py runs it on a real sweep); the sweeps it got."""
    compared = []
    monkeypatch.setattr(sweep, "compare", lambda name, **kw: compared.append(name))
    return compared


def hidden(root):
    """Hidden folders and token files left under a sweep's folders."""
    return [p for p in root.rglob(".*") if p.name != ".ipynb_checkpoints"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("local:0", "--cluster local:0: N is a number of worker processes, at least 1"),
        ("local:x", "--cluster local:x: N is a number of worker processes"),
        ("tcp://127.0.0.1:{port}", "no Dask scheduler answered within 5 s"),
    ],
)
def test_a_bad_cluster_is_refused_in_one_line(value, expected, isolated_dirs, capsys):
    value = value.format(port=free_port())
    start = time.perf_counter()
    args = ["sweep", "badcluster", "-g", "LR=1e-3", "--smoke", "--cluster", value]
    assert main(args) == 1
    error = capsys.readouterr().err.strip()
    assert expected in error and len(error.splitlines()) == 1, error
    assert time.perf_counter() - start < 5 + 10  # the connection timeout, not a hang
    assert not (paths.runs_dir() / "badcluster").exists()


def test_a_data_folder_a_worker_lacks_is_refused_before_anything_runs(
    fake_cluster, isolated_dirs, tmp_path, capsys
):
    folder = tmp_path / "my-letters"
    args = ["sweep", "nodata", "-g", "LR=1e-3", "-p", f"DATA={folder}"]
    assert main([*args, "--cluster", fake_cluster]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert f"DATA={folder}: no such folder on worker(s) tcp://127.0.0.1:" in error
    assert "put it on a filesystem they share, or copy it to" in error
    assert not (paths.runs_dir() / "nodata").exists()


def test_a_dead_worker_is_recorded_the_others_are_shipped_back(
    fake_cluster, isolated_dirs, no_compare, capsys
):
    """One combination kills its worker: recorded as failed; the two others come back as
    files (ship=True) into runs/ and reports/ here; run again, only the failed one is retried."""
    reports = isolated_dirs / "cluster-reports"
    grid = {"LR": [DIES, 0.001, 0.002]}
    kw = {"reports": reports, "cluster": fake_cluster, "ship": True}
    rows = sweep.run_sweep("shipped", grid, **kw)
    assert [r["status"] for r in rows] == ["failed", "ok", "ok"]
    assert "died: out of memory, killed or crashed" in rows[0]["error"]
    shown = capsys.readouterr().out
    assert "worker(s); results are shipped back as files" in shown
    assert "shipped/LR-0.5: failed (the worker running it (tcp://127.0.0.1:" in shown
    assert "shipped/LR-0.001: ok" in shown and no_compare == ["shipped"]
    record = json.loads((paths.runs_dir() / "shipped" / sweep.RECORD).read_text())
    assert record["cluster"]["files"] == "shipped" and record["cluster"]["workers"] == 2
    assert record["results"]["LR-0.5"]["status"] == "failed"
    assert record["results"]["LR-0.001"]["files"] == "shipped"
    for lr in ("0.001", "0.002"):
        run = paths.runs_dir() / "shipped" / f"LR-{lr}"
        assert json.loads((run / "metrics.json").read_text())["accuracy"] == float(lr)
        page = reports / "shipped" / f"LR-{lr}"
        assert (page / "04_evaluate.html").is_file()
        summary = json.loads((page / pipeline.RUN_RECORD).read_text())["summary"]
        assert summary["run folder"] == str(run)  # this machine's folder, not the worker's
    assert "shipped/LR-0.002/index.html" in (reports / "index.html").read_text()
    assert not (paths.runs_dir() / "shipped" / "LR-0.5").exists()
    assert not hidden(paths.runs_dir() / "shipped") and not hidden(reports / "shipped")
    rows = sweep.run_sweep("shipped", grid, **kw)
    assert [r["status"] for r in rows] == ["failed", "skipped", "skipped"]


def test_workers_that_share_the_folders_write_in_place(fake_cluster, isolated_dirs, no_compare):
    """The workers read the client's token at the same paths: each run is moved into place,
    replacing the sweep's own unfinished attempt."""
    reports = isolated_dirs / "cluster-reports"
    unfinished = paths.runs_dir() / "inplace" / "LR-0.001"
    unfinished.mkdir(parents=True)
    (unfinished / "last.pt").write_bytes(b"an attempt cut short")
    rows = sweep.run_sweep(
        "inplace", {"LR": [0.001, 0.002]}, reports=reports, cluster=fake_cluster, progress=False
    )
    assert [(r["status"], r["files"]) for r in rows] == [("ok", "written in place")] * 2
    record = json.loads((paths.runs_dir() / "inplace" / sweep.RECORD).read_text())
    assert (
        record["cluster"]["files"] == "shared" and "same absolute paths" in record["cluster"]["how"]
    )
    assert (unfinished / "metrics.json").is_file() and not (unfinished / "last.pt").exists()
    assert not hidden(paths.runs_dir() / "inplace") and not hidden(reports / "inplace")


def test_ctrl_c_stops_the_sweep_and_leaves_no_half_written_run(
    fake_cluster, isolated_dirs, monkeypatch, no_compare
):
    """Ctrl+C as the first combination ends: the sweep stops, the running combination's kernel
    is killed on its worker, what was queued is cancelled, and every run folder here is either
    complete or absent (shipped, so that nothing a worker still did could land here later)."""

    def interrupted(path, record):
        if record["results"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "write_json", interrupted)
    grid = {"LR": [HANGS, 0.001, 0.002]}
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(STOPPED.strip("/"), grid, cluster=fake_cluster, ship=True, progress=False)
    [kernel] = [int(p.name) for p in (isolated_dirs / "hung-kernels").iterdir()]
    deadline = time.monotonic() + 10
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != "zombie":
        assert time.monotonic() < deadline, "the running combination's kernel was not stopped"
        time.sleep(0.1)
    folder = paths.runs_dir() / STOPPED.strip("/")
    for run in folder.iterdir():
        assert (run / "metrics.json").is_file(), f"{run} is half-written"
    assert not hidden(folder) and no_compare == []


def test_a_finished_run_is_never_replaced_an_unfinished_attempt_is(tmp_path):
    from charlib.workflow import handover

    finished = tmp_path / "s" / "LR-0.1"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text('{"accuracy": 0.5}')
    with pytest.raises(FileExistsError, match="holds a finished run"):
        handover.put(finished, lambda new: (new.mkdir(), (new / "metrics.json").write_text("{}")))
    assert (finished / "metrics.json").read_text() == '{"accuracy": 0.5}'
    unfinished = tmp_path / "s" / "LR-0.2"
    unfinished.mkdir()
    (unfinished / "half.pt").write_text("an interrupted attempt")
    handover.put(unfinished, lambda new: (new.mkdir(), (new / "metrics.json").write_text("{}")))
    assert sorted(p.name for p in unfinished.iterdir()) == ["metrics.json"]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["LR-0.1", "LR-0.2"]
