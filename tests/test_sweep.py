"""Sweeps: the grid, its refusals before anything trains, a smoke sweep end to end with its
comparison report, reruns that skip finished combinations, and the comparison of runs."""

import contextlib
import io
import json
import subprocess
import sys

import pytest
from notebook_outputs import errors, figures, outputs, text_of

from charlib.cli import main
from charlib.common import paths
from charlib.workflow import compare, pipeline, sweep

from conftest import CELL_TIMEOUT


def test_combinations_and_their_names():
    grid = sweep.combinations({"LR": [0.001, 0.003], "STEM": ["small", "imagenet"]})
    assert grid == [
        {"LR": 0.001, "STEM": "small"},
        {"LR": 0.001, "STEM": "imagenet"},
        {"LR": 0.003, "STEM": "small"},
        {"LR": 0.003, "STEM": "imagenet"},
    ]
    assert [sweep.combination_name(c) for c in grid[:2]] == [
        "LR-0.001_STEM-small",
        "LR-0.001_STEM-imagenet",
    ]
    assert sweep.combination_name({"AUGMENTATION": {"rotation": 5}}) == ("AUGMENTATION-rotation-5")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "charlib", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sweep", "s"], "empty grid: give at least one axis"),
        (["sweep", "s", "-g", "LR="], "grid axis LR has no values"),
        (["sweep", "s", "-g", "LR"], "bad grid axis 'LR'"),
        (["sweep", "s", "-g", "LR=fast,slow"], "parameter LR takes float or None values"),
        (["sweep", "s", "-g", "EPOCH=1,2"], "did you mean EPOCHS?"),
        (["sweep", "s", "-g", "LR=1e-3", "-p", "LR=1e-2"], "LR given as a grid axis and a fixed"),
        (["sweep", "s", "-g", "RUN_NAME=a,b"], "RUN_NAME is set by the sweep"),
        (["sweep", "a/b", "-g", "LR=1e-3"], "sweep name 'a/b': use letters"),
        (
            ["sweep", "s", "-g", f"SEED={','.join(map(str, range(500)))}"],
            "the grid has 500 combinations, more than the limit of 64",
        ),
    ],
)
def test_a_bad_sweep_is_refused_in_one_line_before_anything_runs(args, expected, isolated_dirs):
    done = run_cli(*args)
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (paths.runs_dir() / args[1]).exists()


def test_a_sweep_name_with_another_grid_is_refused_naming_the_difference(isolated_dirs):
    folder = paths.runs_dir() / "grid-a"
    folder.mkdir(parents=True)
    record = {"axes": {"LR": [0.001, 0.003]}, "fixed": {}, "results": {}}
    (folder / sweep.RECORD).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"exists with other parameters \(LR: \[0.001, 0.003\]"):
        sweep.check("grid-a", {"LR": [0.01]}, {})
    sweep.check("grid-a", {"LR": [0.001, 0.003]}, {})  # the same grid: goes on


DEMO = ["sweep", "demo", "-g", "MODEL=plain_cnn,mobilenet_v3_small", "--smoke"]
DEMO += ["--cell-timeout", str(CELL_TIMEOUT)]


@pytest.fixture(scope="module")
def demo_sweep(isolated_dirs):
    """One sweep over two architectures on this machine (the slowest part of the suite, so one,
    shared): its reports folder and what it printed."""
    reports = isolated_dirs / "sweep-reports"
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        if main([*DEMO, "--out", str(reports)]) != 0:
            pytest.fail("the smoke sweep failed (its error is in the captured stderr)")
    return reports, shown.getvalue()


@pytest.mark.notebook
def test_a_smoke_sweep_trains_two_runs_and_compares_them(demo_sweep, monkeypatch, capsys):
    """Each combination trained and evaluated with its value recorded, the comparison report
    with its ensemble section, the index; run again, nothing is retrained."""
    reports, shown = demo_sweep
    assert "[1/2] demo/MODEL-plain_cnn: ok" in shown
    assert "[2/2] demo/MODEL-mobilenet_v3_small: ok" in shown
    for name in ("plain_cnn", "mobilenet_v3_small"):
        run = paths.runs_dir() / "demo" / f"MODEL-{name}"
        assert (run / "best.pt").is_file() and (run / "metrics.json").is_file()
        assert json.loads((run / "params.json").read_text())["model"] == name
        assert (reports / "demo" / f"MODEL-{name}" / "04_evaluate.html").is_file()
    compared = outputs(reports / "demo" / "06_compare_runs.ipynb")
    assert not errors(compared)
    text = text_of(compared)
    assert "2 runs; 2 evaluated" in text
    leaderboard = (reports / "demo" / "06_compare_runs.html").read_text()
    assert "demo/MODEL-plain_cnn" in leaderboard and "demo/MODEL-mobilenet_v3_small" in leaderboard
    assert "with TTA" in leaderboard  # the ensemble section ran
    assert figures(compared) == 3  # curves, accuracy against time, per-class gains
    overview = (reports / "index.html").read_text()
    assert "demo/MODEL-plain_cnn/index.html" in overview and "demo/index.html" in overview
    # the same sweep again: both combinations were evaluated, nothing is retrained (and the
    # comparison, which would be the same, is left out)
    before = (paths.runs_dir() / "demo" / "MODEL-plain_cnn" / "best.pt").stat().st_mtime_ns
    monkeypatch.setattr(pipeline, "run_all", _nothing_again)
    compared = []
    monkeypatch.setattr(sweep, "compare", lambda name, **kw: compared.append(name))
    assert main([*DEMO, "--out", str(reports)]) == 0
    assert "[1/2] demo/MODEL-plain_cnn: skipped" in capsys.readouterr().out
    assert compared == ["demo"]  # still compared at the end
    assert (paths.runs_dir() / "demo" / "MODEL-plain_cnn" / "best.pt").stat().st_mtime_ns == before


def _nothing_again(params, only=None, **kw):
    pytest.fail(f"a finished combination ran again: {only}")


@pytest.mark.notebook
def test_the_same_sweep_on_a_local_dask_cluster_gives_the_same_runs(
    demo_sweep, isolated_dirs, monkeypatch, capsys
):
    """`--cluster local:2`: both combinations at once on two worker processes, written in place
    (they share this machine's folders), with the same metrics, class by class, and the same
    leaderboard as the sweep above. Notebook 06 is called at the end as there (not run again:
    its table is compared instead). Probabilities may differ in the last digits: each worker's
    torch gets half the cores, and a sum over other threads rounds differently."""
    here = paths.runs_dir()
    monkeypatch.setenv("CHARLIB_RUNS_DIR", str(isolated_dirs / "cluster-runs"))
    compared = []
    monkeypatch.setattr(sweep, "compare", lambda name, **kw: compared.append(name))
    reports = isolated_dirs / "cluster-sweep-reports"
    assert main([*DEMO, "--out", str(reports), "--cluster", "local:2"]) == 0
    shown = capsys.readouterr().out
    assert "2 worker(s); they share this machine's runs/ and reports/ folders" in shown
    assert "demo/MODEL-plain_cnn: ok" in shown and compared == ["demo"]
    record = json.loads((paths.runs_dir() / "demo" / sweep.RECORD).read_text())
    assert record["cluster"]["files"] == "shared"
    for name in ("plain_cnn", "mobilenet_v3_small"):
        ours, theirs = here / "demo" / f"MODEL-{name}", paths.runs_dir() / "demo" / f"MODEL-{name}"
        assert record["results"][f"MODEL-{name}"]["files"] == "written in place"
        assert (reports / "demo" / f"MODEL-{name}" / "04_evaluate.html").is_file()
        a, b = (json.loads((r / "metrics.json").read_text()) for r in (ours, theirs))
        for key in ("accuracy", "top_k_accuracy", "f1_macro", "n_images", "checkpoint_epoch"):
            assert a[key] == b[key], (name, key)
        assert a["ece"] == pytest.approx(b["ece"], abs=1e-6)
        classes = [
            json.loads((r / "classification_report.json").read_text()) for r in (ours, theirs)
        ]
        assert classes[0] == classes[1]
    boards = []
    for runs in (here, paths.runs_dir()):
        monkeypatch.setenv("CHARLIB_RUNS_DIR", str(runs))
        board = compare.leaderboard(compare.find_runs("demo"))
        boards.append(board.drop(columns=["ece", "training s", "images/s"]))
    assert boards[0].equals(boards[1])


def test_a_failed_combination_is_recorded_and_the_others_go_on(isolated_dirs, monkeypatch):
    def fake_run_all(params, only=None, **kw):
        if only == sweep.COMPARE:
            return []
        if params["LR"] == 0.5:
            raise pipeline.NotebookFailed("03_train_gpu failed in cell [4]: diverged")
        run = paths.resolve_run(params["RUN_NAME"], trained=False)
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"x")
        (run / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
        return []

    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    monkeypatch.setattr(sweep, "compare", lambda *a, **kw: None)
    rows = sweep.run_sweep("fails", {"LR": [0.5, 0.001]}, progress=False)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    record = json.loads((paths.runs_dir() / "fails" / sweep.RECORD).read_text())
    assert "diverged" in record["results"]["LR-0.5"]["error"]


def test_leaderboard_lists_a_run_that_was_not_evaluated(isolated_dirs):
    runs = []
    for name, lr, metrics in (("a", 0.001, {"accuracy": 0.8}), ("b", 0.003, None)):
        run = paths.runs_dir() / "cmp" / name
        run.mkdir(parents=True)
        params = {"lr": lr, "model": "resnet18", "seed": 0}
        (run / "params.json").write_text(json.dumps(params))
        history = [{"epoch": 1, "val_acc": 0.7, "seconds": 10.0, "images_per_s": 100.0}]
        (run / "history.json").write_text(json.dumps(history))
        if metrics:
            (run / "metrics.json").write_text(json.dumps(metrics))
        runs.append(run)
    board = compare.leaderboard(compare.find_runs(["cmp/a", "cmp/b"]))
    assert board.run.tolist() == ["cmp/a", "cmp/b"]
    assert board.status.tolist() == ["evaluated", "not evaluated"]
    assert "lr" in board.columns and "seed" not in board.columns  # only settings that differ
    with pytest.raises(ValueError, match="not evaluated: .*cmp/b"):
        compare.class_differences(*runs)
    with pytest.raises(ValueError, match="RUNS='nothing-\\*' names no trained run"):
        compare.find_runs("nothing-*")
