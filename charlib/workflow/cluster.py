"""A sweep's combinations as tasks on a Dask cluster (`dask.distributed`): Dask schedules them;
each worker runs its combination exactly as one machine does (the function the sweep hands in)
into a private staging folder, and the finished run and reports come back to the client's
runs/<sweep>/ and reports/<sweep>/: moved into place by a worker that shares those folders
(it reads a token the client wrote there at the same path), shipped back as a zip by one that
does not (`handover`). A folder appears under its real name only once complete (it is filled
under a hidden name, then renamed), so neither a crash nor Ctrl+C leaves a half-written run.

`connect` reaches a scheduler or starts a LocalCluster here ('local[:N]'), `check_data` refuses
a DATA folder some worker lacks, `tokens` + `describe` find out which workers share the
folders, `run` runs the tasks. Dask is imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from charlib.workflow import handover

LOCAL = re.compile(r"local(?::(.*))?")  # 'local' or 'local:N': a LocalCluster on this machine
LOCAL_WORKERS = 2  # 'local' without N on a machine without GPUs (with GPUs: one per GPU)
CONNECT_TIMEOUT = 5.0  # s to reach a scheduler before the sweep is refused
TOKEN = ".charlib-cluster-token"  # in runs/<sweep>/ and reports/<sweep>/ while the sweep runs
HOW = (
    "a random token written in runs/<sweep>/ and reports/<sweep>/ here is read by each worker at "
    "the same absolute paths"
)
STARTED = "charlib-started-"  # + a task's key: the Dask Event its worker sets as it starts
RESUBMIT = 3  # times a task lost with a dead worker while it waited there goes back to Dask
# A worker process runs one combination at a time: the staging folder is set in its environment.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Target:
    """Where results go, as the client sees them: its runs folder and reports folder (absolute),
    the token that shows a worker sees them too, whether to ship back anyway, and the GPUs of a
    local cluster (worker i takes GPU i mod gpus; 0: leave CUDA_VISIBLE_DEVICES alone)."""

    runs: str
    reports: str
    token: str
    ship: bool = False
    gpus: int = 0


def local_workers(address: str, gpus: int = 0) -> int | None:
    """The worker processes 'local[:N]' asks for (None: `address` is a scheduler's address)."""
    match = LOCAL.fullmatch(address.strip())
    if match is None:
        return None
    if match.group(1) is None:
        return gpus or LOCAL_WORKERS
    if not match.group(1).isdigit() or int(match.group(1)) < 1:
        raise ValueError(
            f"--cluster {address}: N is a number of worker processes, at least 1, e.g. local:2"
        )
    return int(match.group(1))


@contextmanager
def connect(address: str, *, gpus: int = 0, timeout: float = CONNECT_TIMEOUT, say=print):
    """A dask.distributed Client of the scheduler at `address` (e.g. tcp://host:8786) or of a
    LocalCluster of N worker processes here ('local:N', one thread each, bound to 127.0.0.1);
    waits for a first worker; closed on exit, the local cluster with it."""
    workers = local_workers(address, gpus)
    from distributed import Client

    if workers is not None:
        with _local_cluster(workers) as cluster, Client(cluster) as client:
            client.register_plugin(_leave_ctrl_c_to_the_client())
            yield client
        return
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"--cluster {address}: no Dask scheduler answered within {timeout:g} s ({why}); "
            "start one (dask scheduler, see docs/clusters.md), fix the address, or use local:N"
        ) from None
    with client:
        if not client.scheduler_info()["workers"]:
            say(f"waiting for a worker to join the scheduler at {address} (Ctrl+C to stop)")
            client.wait_for_workers(1)
        yield client


@contextmanager
def _local_cluster(workers: int):
    """N worker processes here, one Dask thread each and an equal share of the cores for torch;
    a task whose worker dies is not retried (allowed-failures 0: as on one machine)."""
    import dask
    from distributed import LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    environ = "distributed.nanny.pre-spawn-environ"
    config = {"distributed.scheduler.allowed-failures": 0}
    config |= {f"{environ}.{k}": threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Dask's own logs stay quiet (even CRITICAL ones when Ctrl+C closes the client
            # first): a dead worker or a failure is reported in the sweep's line.
            silence_logs=logging.CRITICAL + 1,
        ) as cluster,
    ):
        yield cluster


def _leave_ctrl_c_to_the_client():
    """A worker plugin for a local cluster, whose workers share the terminal's process group:
    they ignore Ctrl+C, so that the client stops the sweep's kernels (`run`) before the workers
    stop, and no kernel or process it started is left behind."""
    from distributed import WorkerPlugin

    class LeaveCtrlC(WorkerPlugin):
        name = "charlib-leave-ctrl-c-to-the-client"

        def setup(self, worker):
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return LeaveCtrlC()


def builtin_data() -> list[str]:
    """The DATA names a worker generates or downloads itself (synth, synth-small, emnist, ...)."""
    from charlib.data import download, emnist, synth

    return [*synth.PRESETS, download.ALPHANUM, emnist.NAME]


def check_data(client, sources) -> None:
    """Refuse, before anything trains, a DATA folder that a worker does not see at that path
    (built-in names are made on each worker)."""
    folders = [s for s in dict.fromkeys(map(str, sources)) if s not in builtin_data()]
    if not folders:
        return
    lacking = {w: m for w, m in client.run(_missing, folders).items() if m}
    if lacking:
        folder = next(iter(lacking.values()))[0]
        workers = ", ".join(sorted(w for w, m in lacking.items() if folder in m))
        raise ValueError(
            f"DATA={folder}: no such folder on worker(s) {workers}; every worker reads DATA at "
            f"the same path: put it on a filesystem they share, or copy it to {folder} on each"
        )


def _missing(folders: list[str]) -> list[str]:
    """On a worker: the folders it does not see."""
    return [f for f in folders if not Path(f).expanduser().exists()]


@contextmanager
def tokens(folders: list[Path]):
    """A random token written in each folder (made if needed) while the block runs."""
    token = secrets.token_hex(16)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TOKEN).write_text(token)
    try:
        yield token
    finally:
        for folder in folders:
            (folder / TOKEN).unlink(missing_ok=True)


def describe(client, target: Target, name: str) -> dict:
    """Which workers share the client's folders, for sweep.json and the terminal."""
    seen = client.run(_sees, target, name)
    sharing = sorted(w for w, yes in seen.items() if yes)
    files = "shipped" if target.ship or not sharing else "shared"
    if files == "shared" and len(sharing) < len(seen):
        files = "mixed"
    note = {
        "shared": "they share this machine's runs/ and reports/ folders: results are written in "
        "place",
        "mixed": f"{len(sharing)} of them share this machine's runs/ and reports/ folders (results "
        "written in place), the others' results are shipped back as files",
        "shipped": "they do not share this machine's runs/ and reports/ folders: results are "
        "shipped back as files",
    }[files]
    if target.ship:
        note = "results are shipped back as files (ship=True)"
    address = client.scheduler.address
    return {
        "address": address,
        "workers": len(seen),
        "files": files,
        "how": HOW,
        "note": f"Dask cluster {address}: {len(seen)} worker(s); {note}",
    }


def _sees(target: Target, name: str) -> bool:
    """On a worker: whether it reads the client's token in both folders at the same paths."""
    folders = (Path(target.runs) / name, Path(target.reports) / name)
    try:
        return all((f / TOKEN).read_text() == target.token for f in folders)
    except OSError:
        return False


def run(client, jobs: list[tuple[int, dict, object]], target: Target, done) -> None:
    """Each job (index, row naming its combination and run, work: the sweep's function taking
    reports= and gpu=) as a task; `done(index, row)` as each ends, in the order they end: its
    results are in place by then. A task that was only waiting on a worker that died (another
    task killed it) goes back to Dask, up to RESUBMIT times. Ctrl+C (or any error here) cancels
    the tasks left."""
    from distributed import as_completed

    if not jobs:
        return
    pending = as_completed(loop=client.loop)
    waiting: dict = {}  # future -> (job, times resubmitted)

    def submit(job, times: int = 0) -> None:
        i, row, work = job
        key = f"charlib-{row['run']}-{secrets.token_hex(4)}"
        future = client.submit(_on_worker, work, row["run"], target, key=key, pure=False)
        waiting[future] = (job, times)
        pending.add(future)

    for job in jobs:
        submit(job)
    try:
        for future in pending:
            job, times = waiting.pop(future)
            if times < RESUBMIT and _lost_waiting(client, future):
                submit(job, times + 1)
                continue
            i, row, _ = job
            done(i, row | _collect(future, row["run"], target))
    except BaseException:  # Ctrl+C: as on one machine, what runs stops and the rest never starts
        client.cancel(list(waiting))
        with contextlib.suppress(Exception):
            client.run(_stop_kernels, _stage_prefix(target))
        raise
    finally:
        for _, row, _ in jobs:
            for root in (target.runs, target.reports):
                handover.tidy(Path(root) / row["run"])


def _lost_waiting(client, future) -> bool:
    """Whether a task was lost with a worker that died while the task only waited there (another
    task killed it), as opposed to one that ran: a running task's worker set a Dask Event."""
    from distributed import Event, KilledWorker

    event = Event(f"{STARTED}{future.key}", client=client)
    try:
        killed = future.status == "error" and isinstance(future.exception(), KilledWorker)
        return killed and not event.is_set()
    finally:
        event.clear()  # the scheduler forgets it


def _collect(future, run: str, target: Target) -> dict:
    """A finished task's row, its shipped files unpacked into place; a task that raised or whose
    worker died: a failed row with the reason."""
    from distributed import KilledWorker

    try:
        row, shipped = future.result()
        if shipped is not None:
            handover.unpack(shipped, {k: Path(getattr(target, k)) / run for k in handover.KINDS})
        handover.point_reports(Path(target.reports), run)
    except KilledWorker as e:
        worker = e.last_worker.address
        why = f"the worker running it ({worker}) died: out of memory, killed or crashed"
        return {"status": "failed", "error": why, "note": f"({why})"}
    except Exception as e:  # a task that raised: recorded, as a failed notebook is
        why = f"{type(e).__name__}: {e}"
        return {"status": "failed", "error": why, "note": f"({why})"}
    return row


def _on_worker(work, run: str, target: Target) -> tuple[dict, bytes | None]:
    """On a worker: `work` (one combination) into a private staging folder; then its run (when
    it finished) and its reports are moved into place when this worker sees the client's
    folders, else returned as a zip."""
    from distributed import Event, get_worker

    worker = get_worker()
    # In the worker's own scratch folder: what a killed worker leaves there, Dask clears.
    scratch = worker.local_directory
    prefix = _stage_prefix(target)
    with _ONE_AT_A_TIME, tempfile.TemporaryDirectory(prefix=prefix, dir=scratch) as tmp:
        Event(f"{STARTED}{worker.get_current_task()}").set()  # confirmed by the scheduler
        stage = Path(tmp)
        with handover.runs_in(stage / "runs"):
            row = work(reports=stage / "reports", gpu=_gpu(target.gpus))
        for key in ("error", "note"):  # the report the error names is the client's copy
            if key in row:
                row[key] = row[key].replace(str(stage / "reports"), target.reports)
        made = {"reports": stage / "reports" / run}
        if row["status"] == "ok":
            made["runs"] = stage / "runs" / run
        if target.ship or not _sees(target, run.partition("/")[0]):
            return row | {"files": "shipped"}, handover.zipped(made)
        for kind, folder in made.items():
            handover.put(
                Path(getattr(target, kind)) / run, lambda new, f=folder: shutil.copytree(f, new)
            )
        return row | {"files": "written in place"}, None


def _stage_prefix(target: Target) -> str:
    """The start of this sweep's staging folders' names (its token tells it from other sweeps)."""
    return f"charlib-sweep-{target.token[:12]}-"


def _stop_kernels(prefix: str) -> int:
    """On a worker: kill the kernels (and the processes they started) of this sweep's running
    combinations, known by their runs folder in its staging folder; their tasks then end."""
    import psutil

    stopped = 0
    for kernel in psutil.Process().children():
        try:
            if prefix not in kernel.environ().get("CHARLIB_RUNS_DIR", ""):
                continue
            for process in [*kernel.children(recursive=True), kernel]:
                process.kill()
            stopped += 1
        except psutil.Error:
            continue
    return stopped


def _gpu(gpus: int) -> int | None:
    """A local cluster's worker i takes GPU i mod gpus; None leaves the worker's devices alone."""
    if not gpus:
        return None
    from distributed import get_worker

    name = get_worker().name
    return int(name) % gpus if str(name).isdigit() else None
