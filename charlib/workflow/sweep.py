"""Sweeps: notebooks 03 and 04 for every combination of a parameter grid, each combination its
own run (`runs/<sweep>/<combination>/`) with its own reports, then notebook 06 comparing them.

A failed combination is recorded and the others go on; running the same sweep again skips the
combinations already evaluated. With several GPUs, combinations run side by side, one per GPU;
on a Dask cluster (`cluster=`), each is a task on a worker (`charlib.workflow.cluster`).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from charlib.common import paths
from charlib.common.files import read_json, write_json
from charlib.workflow import cluster as on_cluster
from charlib.workflow import pipeline

# A grid larger than this is refused unless `limit=` (--max) is raised: a typo in a grid should
# not start hundreds of trainings.
MAX_COMBINATIONS = 64
RECORD = "sweep.json"  # in runs/<sweep>/: the grid, the fixed parameters and each outcome
TRAIN_AND_EVALUATE = ["03", "04"]
COMPARE = ["06"]


def parse_axis(item: str, literal) -> tuple[str, list]:
    """'LR=1e-3,3e-3' -> ('LR', [0.001, 0.003]); values are Python literals (else strings)."""
    name, sep, values = item.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"bad grid axis {item!r}; expected NAME=V1,V2,..., e.g. -g LR=1e-3,3e-3")
    parsed = [literal(v.strip()) for v in values.split(",") if v.strip()]
    if not parsed:
        raise ValueError(f"grid axis {name} has no values; give at least one, e.g. {name}=1,2")
    return name, parsed


def combinations(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, the first axis slowest."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def combination_name(combination: dict) -> str:
    """{'LR': 0.001, 'STEM': 'small'} -> 'LR-0.001_STEM-small' (a folder name)."""
    return "_".join(f"{k}-{_slug(v)}" for k, v in combination.items())


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(value)).strip("-")


def check(name: str, axes: dict[str, list], fixed: dict, *, limit: int = MAX_COMBINATIONS) -> None:
    """Everything refusable before the first training: the name, an empty grid, names and types
    (as `charlib run` checks them), the size of the grid, and a sweep of that name with another
    grid or other fixed parameters."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise ValueError(f"sweep name {name!r}: use letters, digits, '.', '_' or '-', no slashes")
    if not axes:
        raise ValueError("empty grid: give at least one axis, e.g. -g LR=1e-3,3e-3")
    chosen = pipeline.select(pipeline.discover(), TRAIN_AND_EVALUATE)
    both = sorted(set(axes) & set(fixed))
    if both or "RUN_NAME" in {*axes, *fixed}:
        what = ", ".join(both) + " given as a grid axis and a fixed parameter" if both else ""
        raise ValueError(what or "RUN_NAME is set by the sweep (runs/<sweep>/<combination>)")
    pipeline.check_parameters(fixed, chosen)
    for axis, values in axes.items():
        for value in values:
            pipeline.check_parameters({axis: value}, chosen)
    count = len(combinations(axes))
    if count > limit:
        raise ValueError(
            f"the grid has {count} combinations, more than the limit of {limit}; narrow it or "
            f"raise the limit (--max {count}) if you mean it"
        )
    earlier = _record(name)
    if earlier and (earlier["axes"], earlier["fixed"]) != (axes, fixed):
        diff = [
            f"{k}: {earlier[part].get(k)!r} before, {now.get(k)!r} now"
            for part, now in (("axes", axes), ("fixed", fixed))
            for k in sorted(set(earlier[part]) | set(now))
            if earlier[part].get(k) != now.get(k)
        ]
        raise ValueError(
            f"sweep {name!r} exists with other parameters ({'; '.join(diff)}); rerun it as it "
            "was to finish it, or choose another sweep name"
        )


def _record(name: str) -> dict:
    return read_json(paths.runs_dir() / name / RECORD, {})


def run_sweep(
    name: str,
    axes: dict[str, list],
    fixed: dict | None = None,
    *,
    smoke: bool = False,
    reports: Path | None = None,
    limit: int = MAX_COMBINATIONS,
    devices: int | None = None,
    cell_timeout: float | None = pipeline.CELL_TIMEOUT,
    progress: bool = True,
    cluster: str | None = None,
    ship: bool = False,
) -> list[dict]:
    """Train and evaluate every combination (skipping those evaluated before), then compare them
    with notebook 06; returns one row per combination (run, status, error, seconds).

    `cluster` runs each combination as a task on a Dask cluster: a scheduler's address
    (tcp://host:8786) or 'local[:N]' (N worker processes here); see `charlib.workflow.cluster`.
    `ship` sends results back as files even to workers that share this machine's folders."""
    fixed = dict(fixed or {})
    check(name, axes, fixed, limit=limit)
    todo = combinations(axes)
    gpus = _gpus() if devices is None else devices
    record = {"axes": axes, "fixed": fixed, "smoke": smoke, "results": {}}
    rows: dict[int, dict] = {}
    lock = threading.Lock()

    def done(i: int, row: dict) -> None:
        with lock:
            rows[i] = row
            record["results"][row["combination"]] = row
            write_json(paths.runs_dir() / name / RECORD, record)
            if progress:
                print(f"[{i}/{len(todo)}] {row['run']}: {row['status']} {row['note']}", flush=True)

    if cluster is None:
        record["results"] = _record(name).get("results", {})
        write_json(paths.runs_dir() / name / RECORD, record)
        _here(name, todo, fixed, smoke, reports, cell_timeout, gpus, done)
    else:
        say = print if progress else lambda line: None
        with on_cluster.connect(cluster, gpus=gpus, say=say) as client:
            on_cluster.check_data(client, _sources(axes, fixed, smoke))
            record["results"] = _record(name).get("results", {})
            work = functools.partial(_run_one, fixed=fixed, smoke=smoke, cell_timeout=cell_timeout)
            local = on_cluster.local_workers(cluster, gpus) is not None  # its workers get GPUs
            _on(client, name, todo, work, reports, ship, gpus if local else 0, record, done, say)
    compare(name, reports=reports, cell_timeout=cell_timeout, progress=progress)
    return [rows[i] for i in sorted(rows)]


def _here(name, todo, fixed, smoke, reports, cell_timeout, gpus, done) -> None:
    """The combinations on this machine: in turn, or one per GPU side by side."""

    def one(i: int, combination: dict, gpu: int | None) -> None:
        row = _finished(name, combination) or _run_one(
            name, combination, fixed, smoke, reports, cell_timeout, gpu
        )
        done(i, row)

    if gpus > 1:  # one combination per GPU, side by side
        with ThreadPoolExecutor(gpus) as pool:
            slots = itertools.cycle(range(gpus))
            futures = [pool.submit(one, i, c, next(slots)) for i, c in enumerate(todo, 1)]
            for f in futures:
                f.result()
    else:
        for i, c in enumerate(todo, 1):
            one(i, c, None)


def _on(client, name, todo, work, reports, ship, gpus, record, done, say) -> None:
    """The combinations not finished before as tasks on a Dask cluster, their results put into
    runs/<name>/ and reports/<name>/ here; how they come back is recorded in sweep.json."""
    runs = paths.runs_dir().absolute()
    reports = Path(reports or paths.reports_dir()).absolute()
    with on_cluster.tokens([runs / name, reports / name]) as token:
        target = on_cluster.Target(str(runs), str(reports), token, ship=ship, gpus=gpus)
        record["cluster"] = on_cluster.describe(client, target, name)
        write_json(runs / name / RECORD, record)
        say(record["cluster"]["note"])
        jobs = []
        for i, combination in enumerate(todo, 1):
            finished = _finished(name, combination)
            if finished:
                done(i, finished)
            else:
                job = functools.partial(work, name, combination)
                jobs.append((i, _row(name, combination), job))
        on_cluster.run(client, jobs, target, done)


def _sources(axes: dict[str, list], fixed: dict, smoke: bool) -> list:
    """Every DATA the combinations train on (a smoke run's 'synth' is 'synth-small')."""
    from charlib.data import loading

    given = axes.get("DATA") or [fixed.get("DATA", "synth")]
    return [loading.smoke_source(source, smoke) for source in given]


def _row(name: str, combination: dict) -> dict:
    run = f"{name}/{combination_name(combination)}"
    return {"combination": combination_name(combination), "run": run, "parameters": combination}


def _finished(name: str, combination: dict) -> dict | None:
    """The row of a combination evaluated in an earlier run of the sweep; None when it was not."""
    row = _row(name, combination)
    if (paths.resolve_run(row["run"], trained=False) / "metrics.json").is_file():
        return row | {"status": "skipped", "note": "(evaluated in an earlier run of the sweep)"}
    return None


def _run_one(name, combination, fixed, smoke, reports, cell_timeout, gpu) -> dict:
    """Train and evaluate one combination into runs/<name>/<combination>/."""
    row = _row(name, combination)
    run = row["run"]
    params = fixed | combination | {"RUN_NAME": run, "SMOKE": smoke, "INTERACTIVE": False}
    params["OVERWRITE"] = True  # an unfinished attempt of this sweep's own combination
    env = {"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else None
    start = time.perf_counter()
    try:
        pipeline.run_all(
            params,
            only=TRAIN_AND_EVALUATE,
            reports=reports,
            progress=False,
            cell_timeout=cell_timeout,
            env=env,
        )
    except pipeline.NotebookFailed as e:
        seconds = time.perf_counter() - start
        return row | {"status": "failed", "error": str(e), "seconds": seconds, "note": str(e)}
    seconds = time.perf_counter() - start
    metrics = json.loads((paths.resolve_run(run) / "metrics.json").read_text())
    note = f"in {pipeline.duration(seconds)}, test accuracy {metrics['accuracy']:.1%}"
    return row | {"status": "ok", "seconds": seconds, "note": note}


def compare(runs, *, reports=None, cell_timeout=pipeline.CELL_TIMEOUT, progress=True) -> Path:
    """Notebook 06 on a sweep (its name) into reports/<sweep>/; returns the report."""
    params = {"RUNS": runs, "RUN_NAME": runs}
    [result] = pipeline.run_all(
        params, only=COMPARE, reports=reports, progress=progress, cell_timeout=cell_timeout
    )
    return result.html


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
