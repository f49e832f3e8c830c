"""Run the numbered notebooks headless with papermill and export each one to an HTML report."""

from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from charlib import paths
from charlib.progress import OFF_VARIABLE

NOTEBOOK_NAME = re.compile(r"^(\d\d)_\w+\.ipynb$")
# Seconds one cell may run before its notebook is stopped: a hung kernel must not hang a batch
# run forever, and no cell of the pipeline (6 CPU epochs: minutes) comes near it.
CELL_TIMEOUT = 6 * 3600


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


def declared(notebooks: list[Path]) -> dict[str, object]:
    """The parameters the notebooks' parameters cells declare, with their default values."""
    import ast

    import papermill

    out = {}
    for notebook in notebooks:
        for name, info in papermill.inspect_notebook(str(notebook)).items():
            try:
                out.setdefault(name, ast.literal_eval(info["default"]))
            except (ValueError, SyntaxError):
                out.setdefault(name, None)  # an expression: no type to check against
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
        if not _fits(value, known[name]):
            default = known[name]
            raise ValueError(
                f"parameter {name} takes {type(default).__name__} values (default "
                f"{default!r}), got {value!r}"
            )


def _fits(value, default) -> bool:
    """Whether a value may replace a declared default: same type, an int for a float, or
    anything where the default (or the value) is None."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


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
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def run_notebook(
    notebook: Path,
    out_dir: Path,
    parameters: dict,
    *,
    progress: bool = True,
    cell_timeout: float | None = CELL_TIMEOUT,
) -> NotebookResult:
    """Execute one notebook into out_dir and export it to HTML, also when it fails.

    A cell running longer than `cell_timeout` seconds (None: no limit) stops the notebook.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    wanted = declared_parameters(notebook)
    params = {k: v for k, v in parameters.items() if k in wanted}
    start = time.perf_counter()
    error = ""
    # Progress bars would be stored as widgets that a static report cannot show;
    # the kernel inherits this environment.
    saved = os.environ.get(OFF_VARIABLE)
    os.environ[OFF_VARIABLE] = "0"
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=progress,
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
            f"{notebook.stem} timed out in cell [{count}] `{_first_line(source)}`: it ran longer "
            f"than {cell_timeout:g} s (the cell timeout; --cell-timeout to raise it)"
        )
    finally:
        if saved is None:
            del os.environ[OFF_VARIABLE]
        else:
            os.environ[OFF_VARIABLE] = saved
    seconds = time.perf_counter() - start
    html_path = export_html(executed, out_dir / f"{notebook.stem}.html")
    return NotebookResult(notebook.stem, executed, html_path, seconds, not error, error)


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
        f"ResNet-18, {params['stem']} stem, {params['img_size']} px, {params['recipe']}"
    )
    seconds = sum(r["seconds"] for r in history)
    facts["training"] = f"{len(history)} epochs in {seconds:.0f} s"
    facts["best validation accuracy"] = f"{max(r['val_acc'] for r in history):.1%}"
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        split, n = metrics.get("split", "test"), metrics.get("n_images", 0)
        facts[f"{split} accuracy"] = (
            f"{metrics['accuracy']:.1%} (top-{metrics.get('top_k', 5)} "
            f"{metrics.get('top_k_accuracy', float('nan')):.1%}, {n:,} images)"
        )
    except (OSError, ValueError, KeyError):
        pass
    return facts


def write_index(results: list[NotebookResult], out_dir: Path, parameters: dict) -> Path:
    """reports/index.html: the run's summary, parameters and a link to each notebook's report."""
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(r.html.name)}'>{html.escape(r.name)}</a></td>"
        f"<td class='{'ok' if r.ok else 'fail'}'>{'ok' if r.ok else html.escape(r.error)}</td>"
        f"<td>{r.seconds:.1f} s</td></tr>"
        for r in results
    )
    params = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(repr(v))}</td></tr>"
        for k, v in parameters.items()
    )
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in run_summary(parameters.get("RUN_NAME", "default")).items()
    )
    total = sum(r.seconds for r in results)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>charlib reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 50rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .35rem .8rem; text-align: left; }}
.ok {{ color: #1a7f37; }} .fail {{ color: #b42318; }}
</style></head><body>
<h1>charlib reports</h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")} by <code>python -m charlib run</code>.</p>
<h2>Run</h2>
<table>{summary or "<tr><td>no training run yet</td></tr>"}</table>
<h2>Reports</h2>
<table><tr><th>notebook</th><th>status</th><th>time</th></tr>
{rows}
<tr><th>total</th><td></td><td>{total:.0f} s</td></tr>
</table>
<h2>Parameters</h2>
<table>{params}</table>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def run_all(
    parameters: dict,
    *,
    only: list[str] | None = None,
    out_dir: Path | None = None,
    notebooks: Path | None = None,
    progress: bool = True,
    cell_timeout: float | None = CELL_TIMEOUT,
) -> list[NotebookResult]:
    """Run the numbered notebooks in order, stopping at the first that fails (NotebookFailed)."""
    out_dir = out_dir or paths.reports_dir()
    chosen = select(discover(notebooks), only)
    if not chosen:
        raise ValueError(
            f"no numbered notebooks (NN_name.ipynb) in {notebooks or paths.notebooks_dir()}"
        )
    results = []
    for notebook in chosen:
        if progress:
            print(f"running {notebook.name}", flush=True)
        result = run_notebook(
            notebook, out_dir, parameters, progress=progress, cell_timeout=cell_timeout
        )
        results.append(result)
        write_index(results, out_dir, parameters)
        if not result.ok:
            raise NotebookFailed(f"{result.error} (report: {result.html})")
    return results
