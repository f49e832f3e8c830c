"""Time-budgeted training: the plan a budget buys, its refusals, and `fit` keeping to the plan.

Nothing here times anything: speeds are given to `budget.choose` or put in place of the
measurement, so the checks hold on any machine.
"""

import json

import pytest
from test_train import cpu_fit, tiny

from charlib.training import budget
from charlib.training.settings import CPU_DEFAULTS, Settings


def plan(left=100.0, **kw):
    args = {"epochs": 6, "full_steps": 100, "step_seconds": 0.1, "epoch_overhead": 1.0} | kw
    return budget.choose(left, left, **args)


def test_a_budget_that_fits_keeps_the_recipe():
    p = plan(left=200.0)  # 6 x (100 x 0.1 + 1) = 66 s
    assert (p.epochs, p.steps, p.share) == (6, 100, 1.0)


def test_a_short_budget_trains_fewer_steps_per_epoch_and_fits():
    p = plan(left=30.0, step_seconds=0.2)  # the full plan would take 126 s
    assert p.epochs * (p.steps * 0.2 + 1.0) <= 30.0 * budget.SAFETY
    assert p.steps < 100 and 0 < p.share < 1
    # validation between epochs stays under its share of the time: fewer, longer epochs
    assert p.epochs * 1.0 <= budget.VALIDATION_SHARE * 30.0 * budget.SAFETY
    assert p.epochs >= 1


def test_slower_machines_get_less_data_not_a_later_finish():
    fast, slow = plan(left=60.0, step_seconds=0.1), plan(left=60.0, step_seconds=0.4)
    assert slow.epochs * slow.steps < fast.epochs * fast.steps
    for p, step in ((fast, 0.1), (slow, 0.4)):
        assert p.epochs * (p.steps * step + 1.0) <= 60.0


def test_a_budget_too_small_for_one_step_is_refused_with_the_minimum():
    with pytest.raises(ValueError, match=r"too short for one training step .* at least 3 s"):
        plan(left=2.0, step_seconds=0.5, epoch_overhead=1.5)


@pytest.mark.parametrize("bad", [-5, 0, "soon", True, [1]])
def test_a_budget_must_be_positive_seconds(bad):
    with pytest.raises(ValueError, match="time budget must be a positive number of seconds"):
        Settings(device="cpu", time_budget=bad).params()


def test_auto_is_the_cpu_budget_and_none_is_no_limit():
    assert Settings(device="cpu", time_budget="auto").params()["time_budget"] == budget.CPU_BUDGET
    assert Settings(device="cpu").params()["time_budget"] is None
    assert Settings(device="cpu", time_budget=float("inf")).params()["time_budget"] is None


def test_fit_too_small_a_budget_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="too short for one training step"):
        cpu_fit(tiny(), run_dir=tmp_path / "r", epochs=2, batch_size=16, time_budget=1e-3)
    assert not (tmp_path / "r" / "last.pt").exists()


def slow_machine(monkeypatch, step_seconds=1.0, overhead=0.5):
    """Make `fit` believe each step takes `step_seconds` (the plan follows; the run is fast)."""
    monkeypatch.setattr(budget, "measure", lambda t, val: (step_seconds, overhead))


def test_fit_follows_the_plan_and_the_schedule_completes(monkeypatch, tmp_path):
    slow_machine(monkeypatch)
    data = tiny(per_class=32)  # 256 images: 16 steps of 16
    run = tmp_path / "r"
    summary = cpu_fit(data, run_dir=run, epochs=4, batch_size=16, time_budget=40)
    params = json.loads((run / "params.json").read_text())
    p = params["plan"]
    assert p["full_steps"] == 16 and p["steps"] < 16 and params["steps_per_epoch"] == p["steps"]
    history = json.loads((run / "history.json").read_text())
    assert len(history) == p["epochs"] == params["epochs"] == summary["epochs_run"]
    assert all(r["images"] == p["steps"] * 16 for r in history)
    assert summary["images_seen"] == p["epochs"] * p["steps"] * 16
    assert summary["time_budget"] == 40
    # one-cycle over the planned steps: annealed to (nearly) nothing at the end
    assert history[-1]["lr"] < 0.01 * CPU_DEFAULTS["fast"]["lr"]


def test_a_resumed_budgeted_run_keeps_its_plan(monkeypatch, tmp_path):
    slow_machine(monkeypatch)
    data, run = tiny(per_class=32), tmp_path / "r"

    def stop_after_first(record, history):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cpu_fit(
            data, run_dir=run, epochs=4, batch_size=16, time_budget=60, callback=stop_after_first
        )
    planned = json.loads((run / "params.json").read_text())["plan"]
    assert planned["epochs"] >= 2
    slow_machine(monkeypatch, step_seconds=0.001)  # a new measurement would plan otherwise
    summary = cpu_fit(data, run_dir=run, epochs=4, batch_size=16, time_budget=60)
    params = json.loads((run / "params.json").read_text())
    assert params["plan"] == planned and summary["epochs_run"] == planned["epochs"]
    history = json.loads((run / "history.json").read_text())
    assert [r["images"] for r in history] == [planned["steps"] * 16] * planned["epochs"]


def test_starting_over_a_trained_run_is_refused(tmp_path):
    run = tmp_path / "r"
    cpu_fit(tiny(), run_dir=run, epochs=1, batch_size=32)
    before = (run / "best.pt").read_bytes()
    with pytest.raises(ValueError, match=r"already holds a trained run \(1 epochs.*OVERWRITE"):
        cpu_fit(tiny(), run_dir=run, epochs=1, batch_size=32, resume=False)
    assert (run / "best.pt").read_bytes() == before
    cpu_fit(tiny(seed=1), run_dir=run, epochs=1, batch_size=32, resume=False, overwrite=True)
    assert (run / "best.pt").read_bytes() != before  # replaced, as asked


def test_a_smoke_run_replaces_only_a_smoke_run(tmp_path):
    smoke, real = tmp_path / "smoke", tmp_path / "real"
    cpu_fit(tiny(), run_dir=smoke, epochs=1, batch_size=32, smoke=True)
    cpu_fit(tiny(), run_dir=smoke, epochs=1, batch_size=32, resume=False, smoke=True)
    cpu_fit(tiny(), run_dir=real, epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="already holds a trained run"):
        cpu_fit(tiny(), run_dir=real, epochs=1, batch_size=32, resume=False, smoke=True)


def test_resuming_a_run_without_a_budget_does_not_record_one(tmp_path):
    data, run = tiny(per_class=32), tmp_path / "r"

    def stop_after_first(record, history):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cpu_fit(data, run_dir=run, epochs=2, batch_size=16, callback=stop_after_first)
    summary = cpu_fit(data, run_dir=run, epochs=2, batch_size=16, time_budget="auto")
    params = json.loads((run / "params.json").read_text())
    assert params["time_budget"] is None and "plan" not in params
    assert summary["epochs_run"] == 2
