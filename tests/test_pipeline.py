"""Notebooks run headless with papermill; failures name the notebook and the cell.

Tests that start a kernel are marked `notebook`; the command-line checks around them are not.
"""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_outputs import errors, figures, outputs, text_of

from charlib.cli import main
from charlib.data import synth
from charlib.training.augment import DEFAULTS
from charlib.workflow import pipeline

from conftest import CELL_TIMEOUT, SMOKE_PARAMS


@pytest.mark.notebook
def test_notebook_01_smoke(smoke_reports):
    result = smoke_reports["01_explore_data"]
    assert result.ok and result.name == "01_explore_data"
    outs = outputs(result.executed)
    assert not errors(outs)
    text = text_of(outs)
    assert (
        "split zips" in text
        and f"train {85 * 24 + 10 * round(24 * synth.DIGITS):,}, validation 570, test 570" in text
    )
    assert "95 classes" in text and "data source" in text
    # split sizes, class distribution, sample grid, image statistics, mean images
    assert figures(outs) == 5
    html = result.html.read_text()
    assert html.count('<img alt="') == 5 and "ProgressModel" not in html
    index = (result.html.parent / "index.html").read_text()
    assert "01_explore_data.html" in index and "SAMPLES_PER_CLASS" in index
    assert result.html.parent.name == "smoke"  # the smoke check's own reports folder


@pytest.mark.notebook
def test_a_smoke_check_leaves_the_users_runs_and_reports_byte_identical(smoke_cli):
    _, before, after = smoke_cli
    assert any(name.startswith("tiny/") and name.endswith("best.pt") for name in before)
    assert any(name.endswith("03_train_gpu.html") for name in before)
    assert after == before
    reports = pipeline.paths.runs_dir().parent / "reports"
    overview = (reports / "index.html").read_text()
    assert "smoke/index.html" in overview  # the index lists the smoke run beside the others


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("X = 1")] + [
        nbformat.v4.new_code_cell(s) for s in sources
    ]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.mark.notebook
def test_failing_notebook_stops_the_run(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_fine.ipynb", "print(X)")
    _notebook(nbs / "02_broken.ipynb", "Y = 2", "raise ValueError('boom')")
    _notebook(nbs / "03_never.ipynb", "print('unreachable')")
    (nbs / "scratch.ipynb").write_text("{}")  # not numbered: never run
    reports = tmp_path / "reports"
    with pytest.raises(pipeline.NotebookFailed) as info:
        pipeline.run_all(
            {"X": 5, "IGNORED": 1},
            reports=reports,
            notebooks=nbs,
            progress=False,
            cell_timeout=CELL_TIMEOUT,
        )
    message = str(info.value)
    # cell [4]: papermill inserts the injected-parameters cell after the parameters cell
    assert "02_broken failed in cell [4] `raise ValueError('boom')`: ValueError: boom" in message
    out = reports / "unnamed"  # no RUN_NAME: the notebooks' reports still get a folder
    assert (out / "02_broken.html").is_file()  # the failing notebook's report is still written
    assert not (out / "03_never.ipynb").exists()
    assert "boom" in (out / "index.html").read_text()
    assert "IGNORED" in (out / "index.html").read_text()  # listed, though no notebook takes it
    assert "5" in text_of(outputs(out / "01_fine.ipynb"))  # parameters were injected


@pytest.mark.notebook
def test_a_failed_run_keeps_the_earlier_runs_in_the_index(tmp_path, capfd):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(
        nbs / "01_work.ipynb",
        "from charlib.common.progress import report",
        "for i in range(3):\n    report(f'step {i + 1} of 3')",
        "assert X == 1, 'X must be 1'",
    )
    reports = tmp_path / "reports"
    kw = {"reports": reports, "notebooks": nbs, "cell_timeout": CELL_TIMEOUT}
    pipeline.run_all({"X": 1, "RUN_NAME": "good"}, **kw)
    shown = capfd.readouterr()
    # the notebook's progress lines came to the terminal, then the table of times
    assert "[1/1] 01_work" in shown.out and "      step 3 of 3" in shown.out
    assert "total" in shown.out.splitlines()[-1]
    assert "without encryption" not in shown.err  # kernels talk over IPC, not TCP
    assert "step 3 of 3" not in (reports / "good" / "01_work.html").read_text()
    with pytest.raises(pipeline.NotebookFailed):
        pipeline.run_all({"X": 2, "RUN_NAME": "bad"}, progress=False, **kw)
    index = (reports / "index.html").read_text()
    assert "good/index.html" in index and "bad/index.html" in index
    assert "X must be 1" in index and index.index("bad/") < index.index("good/")  # newest first
    assert (reports / "good" / "01_work.html").is_file()  # the earlier run's report is there
    record = json.loads((reports / "bad" / pipeline.RUN_RECORD).read_text())
    assert record["status"] == "failed" and "X must be 1" in record["error"]


@pytest.mark.notebook
def test_a_cell_past_the_timeout_stops_the_notebook(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_slow.ipynb", "import time", "time.sleep(60)", "print('never')")
    reports = tmp_path / "reports"
    with pytest.raises(pipeline.NotebookFailed) as info:
        pipeline.run_all({}, reports=reports, notebooks=nbs, progress=False, cell_timeout=3)
    message = str(info.value)
    out = reports / "unnamed"
    assert "01_slow timed out in cell [3] `time.sleep(60)`: it ran longer than 3 s" in message
    assert "--cell-timeout" in message and (out / "01_slow.html").is_file()
    assert "never" not in text_of(outputs(out / "01_slow.ipynb"))


def test_select_unknown_notebook():
    with pytest.raises(ValueError, match="unknown notebook 99; expected one of 01_explore_data"):
        pipeline.select(pipeline.discover(), ["99"])


@pytest.mark.notebook
def test_cli_run_failure_is_one_line(monkeypatch, tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_broken.ipynb", "1 / 0")
    monkeypatch.setattr(pipeline.paths, "notebooks_dir", lambda: nbs)
    assert main(["run", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after papermill's cell progress
    assert last.startswith(
        "charlib: error: 01_broken failed in cell [2] `1 / 0`: ZeroDivisionError"
    )


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "charlib", *args], capture_output=True, text=True)


def test_cli_data_info(make_dataset):
    root = make_dataset("zips", extra={"train": {"65/x.png": b""}})
    done = run_cli("data", "info", str(root))
    assert done.returncode == 0, done.stderr
    assert "split zips" in done.stdout and "skipped train/65/x.png: empty file" in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "info", "/no/such/dataset"], "/no/such/dataset: no such file or folder"),
        (["run", "--only", "42"], "unknown notebook 42"),
        (["run", "-p", "oops"], "bad --param 'oops'"),
        # checked against the notebooks' parameters cells before anything runs
        (["run", "-p", "EPOCH=3"], "has a parameter 'EPOCH'; did you mean EPOCHS?"),
        (["run", "--only", "01", "-p", "RUN_NAME=x"], "no notebook (01) has a parameter"),
        (["run", "-p", "SEED=x"], "parameter SEED takes int values (default 0), got 'x'"),
        (["run", "-p", "EMA=1"], "parameter EMA takes bool values"),
        (["run", "-p", "AUGMENTATION=5"], "parameter AUGMENTATION takes dict values"),
        # None defaults are typed by their annotation: `EPOCHS: "Optional[int]" = None`
        (["run", "-p", "EPOCHS=many"], "parameter EPOCHS takes int or None values"),
        (["run", "-p", "LR=fast"], "parameter LR takes float or None values"),
        (["run", "-p", "TIME_BUDGET=[1]"], "parameter TIME_BUDGET takes float or str or None"),
        (["run", "--time-budget", "soon"], "--time-budget takes seconds, 'auto' or 'none'"),
        (["run", "--time-budget", "-5"], "time budget must be a positive number of seconds"),
        (["run", "-p", "TIME_BUDGET=0"], "time budget must be a positive number of seconds"),
        (["run", "-p", "TIME_BUDGET='soon'"], "time budget must be a positive number"),
        (["run", "--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["run", "--smoke", "--run-name", "x"], "--smoke trains and evaluates its own run"),
        (["run", "--data", "/nonexistent"], "/nonexistent: no such dataset folder or .zip"),
        (["run", "--data", "mnist"], "built-in name: synth, synth-small, alphanum, emnist"),
    ],
)
def test_cli_errors_are_one_line(args, expected, isolated_dirs, tmp_path, capsys):
    """In this process (`main`, as `python -m charlib` calls it); the test below runs one in a
    process of its own."""
    out = ["--out", str(tmp_path / "reports")] if args[0] == "run" else []
    assert main([*args, *out]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()  # refused before anything ran


def test_a_cli_error_in_a_process_of_its_own_is_one_line_and_exit_status_1(isolated_dirs, tmp_path):
    done = run_cli("run", "--epochs", "0", "--out", str(tmp_path / "reports"))
    assert done.returncode == 1
    assert "epochs must be a positive integer, got 0" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()


# what a faked run_all returns: one notebook that ran
DONE = [pipeline.NotebookResult("03_x", Path("r/03_x.ipynb"), Path("r/03_x.html"), 1.0, True)]


def test_an_existing_run_is_refused_unless_overwrite(monkeypatch, isolated_dirs, capsys):
    run = pipeline.paths.runs_dir() / "mine"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"weights")
    (run / "last.pt").write_bytes(b"state")
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "val_acc": 0.5}]))
    seen = {}
    monkeypatch.setattr(pipeline, "run_all", lambda params, **kw: seen.update(params) or DONE)
    monkeypatch.setattr(synth, "ensure", lambda preset, **kw: preset)
    assert main(["run", "--run-name", "mine", "--only", "03"]) == 1
    err = capsys.readouterr().err
    assert "already holds a trained run (1 epochs, best validation 50.0%)" in err
    assert "--overwrite" in err and not seen
    assert (run / "best.pt").read_bytes() == b"weights"
    main(["run", "--run-name", "mine", "--only", "03", "--overwrite"])  # asked for: goes ahead
    assert seen["RUN_NAME"] == "mine" and seen["OVERWRITE"] is True
    seen.clear()
    main(["run", "--run-name", "mine", "--only", "03", "-p", "RESUME=True"])  # continued
    assert seen["RESUME"] is True


def test_unnamed_runs_get_a_new_name(monkeypatch, isolated_dirs):
    seen = []
    monkeypatch.setattr(pipeline, "run_all", lambda params, **kw: seen.append(params) or DONE)
    monkeypatch.setattr(pipeline.paths, "reports_dir", lambda: isolated_dirs / "reports")
    monkeypatch.setattr(synth, "ensure", lambda preset, **kw: preset)
    for _ in range(2):
        main(["run", "--only", "03"])
        (pipeline.paths.runs_dir() / seen[-1]["RUN_NAME"]).mkdir(parents=True)
    first, second = (p["RUN_NAME"] for p in seen)
    assert first.startswith("synth-") and second.startswith("synth-")
    assert second != first  # never an earlier run's folder (-2 within the same minute)


def test_param_values_are_literals(monkeypatch, tmp_path):
    seen = {}

    def fake_run_all(params, **kwargs):
        seen.update(params)
        raise pipeline.NotebookFailed("stop here")

    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    monkeypatch.setattr(synth, "ensure", lambda preset, **kw: seen.setdefault("generated", preset))
    given = ["-p", "EPOCHS=3", "-p", "CHARS=abc", "-p", "AUGMENTATION={'rotation': 5}"]
    assert main(["run", "--smoke", *given]) == 1
    # smoke runs use the small built-in set, generated before the notebooks start
    assert seen.pop("generated") == "synth-small"
    headless = {"RUN_NAME": "smoke", "INTERACTIVE": False}  # its own run for 03-05, no live pad
    assert (
        seen
        == {"SMOKE": True, "EPOCHS": 3, "CHARS": "abc"}
        | {"AUGMENTATION": {"rotation": 5}}
        | headless
    )
    assert json.dumps(seen)
    main(["run", "--epochs", "4", "--run-name", "big", "-p", "INTERACTIVE=True"])
    assert seen["EPOCHS"] == 4 and seen["RUN_NAME"] == "big" and seen["INTERACTIVE"] is True
    main(["run", "--run-name", "big", "--time-budget", "90"])
    assert seen["TIME_BUDGET"] == 90.0
    main(["run", "--run-name", "big", "--time-budget", "none"])
    assert seen["TIME_BUDGET"] is None


@pytest.mark.notebook
def test_notebook_02_previews_what_training_does(smoke_reports):
    result = smoke_reports["02_augmentation_preview"]
    assert result.ok
    aug_outs = outputs(result.executed)
    # the panel of every augmentation, then many draws of two characters
    assert figures(aug_outs) == 3
    assert "showing: A (65), a (97), B (66)" in text_of(aug_outs)
    # the magnitudes shown are training's: augment.DEFAULTS under the AUGMENTATION passed
    [table] = [o for o in aug_outs if "magnitude" in o.get("data", {}).get("text/plain", "")]
    rows = [line.split(maxsplit=2) for line in table["data"]["text/plain"].splitlines()[1:]]
    expected = {**DEFAULTS, **SMOKE_PARAMS["AUGMENTATION"]}
    assert {name: float(value) for name, value, _ in rows} == expected
    for name, _, source in rows:
        changed = name in SMOKE_PARAMS["AUGMENTATION"]
        assert source == ("changed by AUGMENTATION" if changed else "training default"), name


@pytest.mark.notebook
def test_notebook_03_smoke(smoke_reports):
    train_outs = outputs(smoke_reports["03_train_gpu"].executed)
    assert not errors(train_outs)
    text = text_of(train_outs)
    assert "best_val_acc" in text and "images_per_s" in text and "smoke" in text
    run = pipeline.paths.runs_dir() / "smoke"
    for name in ("best.pt", "last.pt", "params.json", "history.json", "training_history.png"):
        assert (run / name).is_file(), name
    assert figures(train_outs) >= 1
    # trained with the magnitudes notebook 02 showed
    params = json.loads((run / "params.json").read_text())
    assert params["augmentation"] == {**DEFAULTS, **SMOKE_PARAMS["AUGMENTATION"]}


@pytest.mark.notebook
def test_notebook_02_refuses_an_unknown_augmentation(tmp_path):
    bad = {"DATA": "synth-small", "SMOKE": True, "AUGMENTATION": {"rotaton": 30}}
    with pytest.raises(pipeline.NotebookFailed, match="unknown augmentation \\['rotaton'\\]"):
        pipeline.run_all(bad, only=["02"], reports=tmp_path, progress=False, cell_timeout=60)
