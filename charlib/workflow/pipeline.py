"""Run the numbered notebooks headless with papermill and export each one to an HTML report."""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from charlib.common import paths
from charlib.common.files import atomic_write, read_json, write_json
from charlib.common.progress import LOG_VARIABLE, OFF_VARIABLE
from charlib.data.sources import measured_on, split_label

NOTEBOOK_NAME = re.compile(r"^(\d\d)_\w+\.ipynb$")
# Seconds one cell may run before its notebook is stopped: a hung kernel must not hang a batch
# run forever, and no cell of the pipeline (6 CPU epochs: minutes) comes near it.
CELL_TIMEOUT = 6 * 3600
RUN_RECORD = "run.json"  # in each run's report folder: what the overview index lists
TAIL_EVERY = 0.5  # s between looks at the progress lines a running notebook wrote


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


@dataclass
class NotebookResult:
    """One executed notebook: where its outputs went and how long it took."""

    name: str
    executed: Path
    html: Path
    seconds: float
    ok: bool
    error: str = ""


def discover(notebooks: Path | None = None) -> list[Path]:
    """The numbered notebooks (NN_name.ipynb), in order."""
    folder = notebooks or paths.notebooks_dir()
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def declared(notebooks: list[Path]) -> dict[str, tuple[object, str]]:
    """The parameters the notebooks' parameters cells declare: name -> (default value, type
    annotation or "None"), e.g. `EPOCHS: "Optional[int]" = None` -> (None, "Optional[int]")."""
    import ast

    import papermill

    out = {}
    for notebook in notebooks:
        for name, info in papermill.inspect_notebook(str(notebook)).items():
            try:
                default = ast.literal_eval(info["default"])
            except (ValueError, SyntaxError):
                default = None  # an expression: no type to check against
            out.setdefault(name, (default, info["inferred_type_name"]))
    return out


def check_parameters(given: dict, notebooks: list[Path]) -> None:
    """Refuse, before anything runs, a name no chosen notebook declares, or a value whose type
    differs from the declared default's (an int may stand for a float; None defaults take all)."""
    import difflib

    known = declared(notebooks)
    for name, value in given.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            shown = ", ".join(n.name[:2] for n in notebooks)
            raise ValueError(f"no notebook ({shown}) has a parameter {name!r}{hint}")
        default, annotation = known[name]
        allowed = _types(annotation) or ([type(default)] if default is not None else [])
        if allowed and not any(_fits(value, kind) for kind in allowed):
            takes = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
            raise ValueError(
                f"parameter {name} takes {takes} values (default {default!r}), got {value!r}"
            )


_TYPE_NAMES = {t.__name__: t for t in (int, float, str, bool, dict, list, tuple)}


def _types(annotation: str) -> list[type]:
    """The types a parameters-cell annotation allows: "Optional[int]" -> [int, NoneType],
    "Union[float, str, None]" -> [float, str, NoneType]; [] when there is none."""
    names = re.findall(r"\w+", annotation.replace("Optional", ""))
    names += ["None"] if annotation.startswith("Optional") else []
    kinds = [type(None) if n == "None" else _TYPE_NAMES.get(n) for n in names if n != "Union"]
    return [] if annotation == "None" or None in kinds else list(dict.fromkeys(kinds))


def _fits(value, kind: type) -> bool:
    """Whether a value is of a declared type: exactly for bools, an int for a float."""
    if kind is bool or isinstance(value, bool):
        return type(value) is kind
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def select(found: list[Path], only: list[str] | None) -> list[Path]:
    """Notebooks whose number or name is in `only` (all when empty); unknown names fail loudly."""
    if not only:
        return found
    chosen = [p for p in found if any(p.stem == o or p.stem.startswith(f"{o}_") for o in only)]
    unknown = [o for o in only if not any(p.stem == o or p.stem.startswith(f"{o}_") for p in found)]
    if unknown:
        names = ", ".join(p.stem for p in found)
        raise ValueError(f"unknown notebook {', '.join(unknown)}; expected one of {names}")
    return chosen


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged 'parameters'."""
    return set(declared([notebook]))


def run_notebook(
    notebook: Path,
    out_dir: Path,
    parameters: dict,
    *,
    progress: bool = True,
    cell_timeout: float | None = CELL_TIMEOUT,
    env: dict[str, str] | None = None,
) -> NotebookResult:
    """Execute one notebook into out_dir and export it to HTML, also when it fails.

    With `progress`, the lines the notebook reports (`progress.report`: stages, one per training
    epoch) are printed while it runs. A cell running longer than `cell_timeout` seconds (None:
    no limit) stops the notebook. `env` adds variables to the kernel's environment only (e.g.
    CUDA_VISIBLE_DEVICES for one of several notebooks running side by side).
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    wanted = declared_parameters(notebook)
    params = {k: v for k, v in parameters.items() if k in wanted}
    start = time.perf_counter()
    error = ""
    with (
        tempfile.TemporaryDirectory(prefix="charlib-") as work,
        _progress_lines(Path(work) / "progress.log", progress) as log,
    ):
        # Progress bars off (a static report cannot show them); progress lines into `log`.
        kernel_env = {OFF_VARIABLE: "0", LOG_VARIABLE: str(log)} | (env or {})
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=params,
                cwd=str(notebook.parent),
                kernel_name="python3",
                kernel_manager_class=_ipc_kernels(Path(work) / "kernel", kernel_env),
                progress_bar=False,
                log_output=False,
                execution_timeout=cell_timeout,
            )
        except papermill.PapermillExecutionError as e:
            # [N] is the execution count the HTML report shows beside the cell.
            error = (
                f"{notebook.stem} failed in cell [{e.exec_count}] `{_first_line(e.source)}`: "
                f"{e.ename}: {e.evalue}"
            )
        except CellTimeoutError:
            count, source = _stopped_cell(executed)
            error = (
                f"{notebook.stem} timed out in cell [{count}] `{_first_line(source)}`: it ran "
                f"longer than {cell_timeout:g} s (the cell timeout; --cell-timeout to raise it)"
            )
    seconds = time.perf_counter() - start
    html_path = export_html(executed, out_dir / f"{notebook.stem}.html")
    return NotebookResult(notebook.stem, executed, html_path, seconds, not error, error)


@contextmanager
def _progress_lines(log: Path, show: bool):
    """A file for a notebook's progress lines, printed here as they come when `show`."""
    log.touch()
    done = threading.Event()
    tail = threading.Thread(target=_tail, args=(log, done, show), daemon=True)
    tail.start()
    try:
        yield log
    finally:
        done.set()
        tail.join()


def _tail(log: Path, done: threading.Event, show: bool) -> None:
    """Print the lines written to `log` until `done` is set (and those written just before)."""
    seen = 0
    while True:
        finished = done.wait(TAIL_EVERY)
        with open(log, "rb") as f:
            f.seek(seen)
            text = f.read()
        complete = text[: text.rfind(b"\n") + 1]
        seen += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines() if show else []:
            print(f"      {line}", flush=True)
        if finished:
            return


def _ipc_kernels(socket_prefix: Path, env: dict[str, str]):
    """A kernel manager class whose kernels listen on Unix sockets in a private folder (no TCP
    ports, so no kernel warns that its traffic is unencrypted) and get `env` on top of ours."""
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(socket_prefix)

        async def _async_pre_start_kernel(self, **kwargs):
            cmd, launch = await super()._async_pre_start_kernel(**kwargs)
            launch["env"] = {**launch.get("env", os.environ), **env}
            return cmd, launch

    return IpcKernelManager


def _first_line(source: str) -> str:
    return next((t.strip() for t in source.splitlines() if t.strip()), "")[:60]


def _stopped_cell(executed: Path) -> tuple[int | None, str]:
    """The execution count and source of the last cell that ran in an executed notebook."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return None, ""
    ran = [c for c in cells if c.cell_type == "code" and c.get("execution_count")]
    return (ran[-1].execution_count, ran[-1].source) if ran else (None, "")


def export_html(executed: Path, target: Path) -> Path:
    """An executed notebook -> a standalone HTML page (figures are inline PNGs)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nbformat.read(executed, as_version=4)
    )
    target.write_text(body, encoding="utf-8")
    return target


def run_summary(run_name) -> dict[str, str]:
    """Headline facts of a run (see `paths.resolve_run`) for the index: data, device, accuracy."""
    facts: dict[str, str] = {}
    try:
        run_dir = paths.resolve_run(run_name, trained=False)
        params = json.loads((run_dir / "params.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return facts
    env = params.get("environment", {})
    facts["run folder"] = str(run_dir)
    facts["data"] = (
        f"{params.get('data') or '?'} ({params.get('train_images', 0):,} training images)"
    )
    facts["device"] = (
        env.get("gpu") or f"{env.get('cpu', 'CPU')} ({env.get('cpu cores', '?')} cores)"
    )
    facts["model"] = (
        f"{params.get('model', 'resnet18')}, {params['stem']} stem, {params['img_size']} px, "
        f"{params['recipe']} recipe"
    )
    seconds = sum(r["seconds"] for r in history)
    facts["training"] = f"{len(history)} epochs in {seconds:.0f} s"
    if params.get("plan"):
        plan = params["plan"]
        facts["training"] += (
            f" (time budget {plan['budget']:.0f} s: {plan['steps']} of {plan['full_steps']}"
            " batches per epoch)"
        )
    best = max(r["val_acc"] for r in history)
    facts[f"best {split_label(params.get('data'), 'validation')} accuracy"] = f"{best:.1%}"
    return facts | _held_out(run_dir, params)


def _held_out(run_dir: Path, params: dict) -> dict[str, str]:
    """'synth test accuracy': the evaluated split, named by its data; 'real (EMNIST) accuracy'
    when notebook 04 also scored the run on real handwriting (real.json)."""
    from charlib.inference import real

    facts = {}
    metrics = read_json(run_dir / "metrics.json", {})
    if "accuracy" in metrics:
        facts[f"{measured_on(metrics, params.get('data'))} accuracy"] = (
            f"{metrics['accuracy']:.1%} (top-{metrics.get('top_k', 5)} "
            f"{metrics.get('top_k_accuracy', float('nan')):.1%}, "
            f"{metrics.get('n_images', 0):,} images)"
        )
    found = read_json(run_dir / real.RESULT, {})
    if "accuracy" in found:
        facts[f"{found['label']} accuracy"] = (
            f"{found['accuracy']:.1%} (top-5 {found['top5_accuracy']:.1%}, "
            f"{found['n_images']:,} images of {found['described']}, all classes open)"
        )
    return facts


def headline(facts: dict[str, str]) -> str:
    """'90.0% synth test · 59.0% real (EMNIST)' for the index: the held-out figures, each with
    its data named; the best validation accuracy when the run has none yet."""
    held = [k for k in facts if k.endswith(" accuracy") and not k.startswith("best ")]
    shown = held or [k for k in facts if k.startswith("best ")][:1]
    return " · ".join(f"{facts[k].split()[0]} {k.removesuffix(' accuracy')}" for k in shown)


def report_name(parameters: dict) -> str:
    """The reports/<name> folder of the run the parameters name (smoke checks: 'smoke'; None:
    the latest trained run), so one run's reports never replace another's."""
    run = paths.run_for(parameters.get("RUN_NAME"), bool(parameters.get("SMOKE")))
    if run is None and "RUN_NAME" not in parameters:
        return "unnamed"  # notebooks that name no run
    if paths.is_latest(run):
        try:
            return paths.resolve_run(None).name
        except FileNotFoundError:
            return "unnamed"
    folder = paths.resolve_run(run, trained=False)
    if folder.is_relative_to(paths.runs_dir()):  # a sweep's "demo/LR-0.001" keeps its folder
        return folder.relative_to(paths.runs_dir()).as_posix()
    return folder.name


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .35rem .8rem; text-align: left;
  vertical-align: top; }}
td:first-child a, td:nth-child(2) {{ white-space: nowrap; }}
.ok {{ color: #1a7f37; }} .failed {{ color: #b42318; }} .running {{ color: #9a6700; }}
</style></head><body>
{body}
</body></html>
"""


def _table(rows: list[list[str]], head: list[str] | None = None) -> str:
    """An HTML table of already-escaped cells."""
    top = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{top}{body}</table>"


def write_run_page(record: dict, out_dir: Path) -> Path:
    """<run>/index.html: the run's summary, its notebooks' reports and times, its parameters."""
    e = html.escape
    notebooks = [
        [
            f"<a href='{e(n['html'])}'>{e(n['name'])}</a>",
            f"<span class='{'ok' if n['ok'] else 'failed'}'>"
            f"{'ok' if n['ok'] else e(n['error'])}</span>",
            f"{n['seconds']:.1f} s",
        ]
        for n in record["notebooks"]
    ]
    total = sum(n["seconds"] for n in record["notebooks"])
    notebooks.append(["<b>total</b>", "", f"{total:.0f} s"])
    summary = [[f"<b>{e(k)}</b>", e(v)] for k, v in record["summary"].items()]
    params = [[e(k), e(repr(v))] for k, v in record["parameters"].items()]
    body = (
        f"<p><a href='{'../' * (record['run'].count('/') + 1)}index.html'>all runs</a></p>"
        f"<h1>Run {e(record['run'])}</h1>"
        f"<p>Started {e(record['started'])} by <code>python -m charlib run</code>; "
        f"<span class='{record['status']}'>{e(record['status'])}</span>.</p>"
        f"<h2>Run</h2>{_table(summary or [['no training run yet']])}"
        f"<h2>Reports</h2>{_table(notebooks, ['notebook', 'status', 'time'])}"
        f"<h2>Parameters</h2>{_table(params)}"
    )
    index = out_dir / "index.html"
    atomic_write(index, lambda f: f.write(_page(f"charlib run {record['run']}", body).encode()))
    return index


def write_overview(reports: Path) -> Path:
    """reports/index.html: every run with reports here, newest first, each linking its page."""
    records = []
    for found in reports.glob(f"**/{RUN_RECORD}"):  # runs, and each run of a sweep
        record = read_json(found, None)  # None: being written, or broken by hand
        if record is not None:
            records.append(record)
    records.sort(key=lambda r: r.get("started", ""), reverse=True)
    e = html.escape
    rows = []
    for r in records:
        facts = r.get("summary", {})
        accuracy = headline(facts)
        status = r.get("status", "?") + (f": {r['error']}" if r.get("error") else "")
        rows.append(
            [
                f"<a href='{e(r['run'])}/index.html'>{e(r['run'])}</a>",
                e(r.get("started", "")),
                e(facts.get("data", "")),
                e(facts.get("device", "")),
                e(accuracy),
                duration(sum(n["seconds"] for n in r.get("notebooks", []))),
                f"<span class='{e(r.get('status', ''))}'>{e(status)}</span>",
            ]
        )
    head = ["run", "started", "data", "device", "accuracy", "time", "status"]
    body = (
        "<h1>charlib reports</h1><p>Every run of <code>python -m charlib run</code>, newest "
        f"first. Updated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
        + (_table(rows, head) if rows else "<p>No runs yet.</p>")
    )
    index = reports / "index.html"
    atomic_write(index, lambda f: f.write(_page("charlib reports", body).encode()))
    return index


def _record(reports: Path, name: str, parameters: dict) -> dict:
    """The run's record, continued from an earlier one of the same run (its other notebooks'
    reports stay listed when only some are rerun)."""
    earlier = read_json(reports / name / RUN_RECORD, {})
    return {
        "run": name,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "status": "running",
        "error": "",
        "parameters": dict(parameters),
        "notebooks": earlier.get("notebooks", []),
        "summary": {},
    }


def _save_record(record: dict, reports: Path, result: NotebookResult) -> None:
    """Add a notebook's outcome to the run's record; rewrite its page and the index of runs."""
    out_dir = reports / record["run"]
    entry = {k: v for k, v in asdict(result).items() if k in ("name", "seconds", "ok")}
    entry |= {"html": result.html.name, "error": result.error}
    record["notebooks"] = [n for n in record["notebooks"] if n["name"] != result.name]
    record["notebooks"] = sorted([*record["notebooks"], entry], key=lambda n: n["name"])
    given = record["parameters"]
    record["summary"] = run_summary(paths.run_for(given.get("RUN_NAME"), bool(given.get("SMOKE"))))
    write_json(out_dir / RUN_RECORD, record)
    write_run_page(record, out_dir)
    write_overview(reports)


def run_all(
    parameters: dict,
    *,
    only: list[str] | None = None,
    reports: Path | None = None,
    notebooks: Path | None = None,
    progress: bool = True,
    cell_timeout: float | None = CELL_TIMEOUT,
    env: dict[str, str] | None = None,
) -> list[NotebookResult]:
    """Run the numbered notebooks in order into reports/<run name>/, stopping at the first that
    fails (NotebookFailed); reports/index.html lists every run. With `progress`, a line per
    notebook, its reported progress and a table of times are printed."""
    reports = Path(reports or paths.reports_dir())
    chosen = select(discover(notebooks), only)
    if not chosen:
        raise ValueError(
            f"no numbered notebooks (NN_name.ipynb) in {notebooks or paths.notebooks_dir()}"
        )
    record = _record(reports, report_name(parameters), parameters)
    out_dir = reports / record["run"]
    results = []
    for i, notebook in enumerate(chosen, 1):
        if progress:
            print(f"[{i}/{len(chosen)}] {notebook.stem}: {title(notebook)}", flush=True)
        result = run_notebook(
            notebook, out_dir, parameters, progress=progress, cell_timeout=cell_timeout, env=env
        )
        results.append(result)
        status = "failed" if not result.ok else "running" if i < len(chosen) else "ok"
        record |= {"status": status, "error": result.error}
        _save_record(record, reports, result)
        if progress:
            print(f"      {'done' if result.ok else 'FAILED'} in {duration(result.seconds)}")
        if not result.ok:
            raise NotebookFailed(f"{result.error} (report: {result.html})")
    if progress:
        print(times_table(results))
    return results


def title(notebook: Path) -> str:
    """The first heading of a notebook's first markdown cell, e.g. 'Train a ResNet-18'."""
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):  # '# 03 · Train a ResNet-18' -> 'Train a ResNet-18'
                    return re.sub(r"^\d\d\s*\W\s*", "", line.lstrip("# ").strip())
    return notebook.stem


def duration(seconds: float) -> str:
    """'48 s' or '3 min 12 s'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def times_table(results: list[NotebookResult]) -> str:
    """The notebooks' times, for the terminal at the end of a run."""
    width = max(len(r.name) for r in results)
    lines = [f"{r.name:<{width}}  {duration(r.seconds):>12}" for r in results]
    lines.append(f"{'total':<{width}}  {duration(sum(r.seconds for r in results)):>12}")
    return "\n".join(lines)
