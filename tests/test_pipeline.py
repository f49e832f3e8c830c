"""Notebooks run headless with papermill; failures name the notebook and the cell.

Tests that start a kernel are marked `notebook`; the command-line checks around them are not.
"""

import json
import subprocess
import sys

import nbformat
import pytest
from notebook_outputs import errors, figures, outputs, text_of

from charlib import pipeline, synth
from charlib.augment import DEFAULTS
from charlib.cli import main

from conftest import CELL_TIMEOUT, SMOKE_PARAMS


@pytest.mark.notebook
def test_notebook_01_smoke(smoke_reports):
    result = smoke_reports["01_explore_data"]
    assert result.ok and result.name == "01_explore_data"
    outs = outputs(result.executed)
    assert not errors(outs)
    text = text_of(outs)
    assert "split zips" in text and "train 2,280, validation 570, test 570" in text
    assert "95 classes" in text and "data source" in text
    # split sizes, class distribution, sample grid, image statistics, mean images
    assert figures(outs) == 5
    html = result.html.read_text()
    assert html.count('<img alt="') == 5 and "ProgressModel" not in html
    index = (result.html.parent / "index.html").read_text()
    assert "01_explore_data.html" in index and "SAMPLES_PER_CLASS" in index


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
    out = tmp_path / "reports"
    with pytest.raises(pipeline.NotebookFailed) as info:
        pipeline.run_all(
            {"X": 5}, out_dir=out, notebooks=nbs, progress=False, cell_timeout=CELL_TIMEOUT
        )
    message = str(info.value)
    # cell [4]: papermill inserts the injected-parameters cell after the parameters cell
    assert "02_broken failed in cell [4] `raise ValueError('boom')`: ValueError: boom" in message
    assert (out / "02_broken.html").is_file()  # the failing notebook's report is still written
    assert not (out / "03_never.ipynb").exists()
    assert "boom" in (out / "index.html").read_text()
    assert "5" in text_of(outputs(out / "01_fine.ipynb"))  # parameters were injected


@pytest.mark.notebook
def test_a_cell_past_the_timeout_stops_the_notebook(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_slow.ipynb", "import time", "time.sleep(60)", "print('never')")
    out = tmp_path / "reports"
    with pytest.raises(pipeline.NotebookFailed) as info:
        pipeline.run_all({}, out_dir=out, notebooks=nbs, progress=False, cell_timeout=3)
    message = str(info.value)
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
    ],
)
def test_cli_errors_are_one_line(args, expected):
    done = run_cli(*args)
    assert done.returncode == 1
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_param_values_are_literals(monkeypatch, tmp_path):
    seen = {}

    def fake_run_all(params, **kwargs):
        seen.update(params)
        raise pipeline.NotebookFailed("stop here")

    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    monkeypatch.setattr(synth, "ensure", lambda preset: seen.setdefault("generated", preset))
    given = ["-p", "EPOCHS=3", "-p", "CHARS=abc", "-p", "AUGMENTATION={'rotation': 5}"]
    assert main(["run", "--smoke", *given]) == 1
    # smoke runs use the small built-in set, generated before the notebooks start
    assert seen.pop("generated") == "synth-small"
    headless = {"RUN_NAME": "default", "INTERACTIVE": False}  # one run for 03-05, no live pad
    assert (
        seen
        == {"DATA": "synth", "SMOKE": True, "EPOCHS": 3, "CHARS": "abc"}
        | {"AUGMENTATION": {"rotation": 5}}
        | headless
    )
    assert json.dumps(seen)
    main(["run", "--epochs", "4", "--run-name", "big", "-p", "INTERACTIVE=True"])
    assert seen["EPOCHS"] == 4 and seen["RUN_NAME"] == "big" and seen["INTERACTIVE"] is True


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
    assert "best_val_acc" in text and "images_per_s" in text and "smoke-run" in text
    run = pipeline.paths.runs_dir() / "smoke-run"
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
        pipeline.run_all(bad, only=["02"], out_dir=tmp_path, progress=False, cell_timeout=60)
