"""Comparing runs: which runs a RUNS parameter means, a leaderboard of their metrics and the
settings that differ, their validation curves, and per-class gains and losses against a baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from charlib.common import paths
from charlib.common.files import read_json
from charlib.data.sources import measured_on
from charlib.inference import real

# Settings a leaderboard shows when they differ between the runs compared.
SETTINGS = (
    "model",
    "recipe",
    "stem",
    "lr",
    "batch_size",
    "epochs",
    "img_size",
    "augmentation",
    "ema",
    "seed",
    "time_budget",
    "data",
)


def find_runs(runs) -> list[Path]:
    """Trained run folders (holding params.json) that RUNS means: a sweep's name (its
    combinations), a glob under runs/ ('synth-*'), or a list of run names or folders."""
    if isinstance(runs, (list, tuple)):
        found = [paths.resolve_run(r, trained=False) for r in runs]
    else:
        folder = paths.resolve_run(str(runs), trained=False)
        pattern = "*" if (folder / "sweep.json").is_file() else None
        found = sorted(folder.glob(pattern)) if pattern else sorted(paths.runs_dir().glob(runs))
    trained = [f for f in found if (f / "params.json").is_file()]
    if not trained:
        raise ValueError(
            f"RUNS={runs!r} names no trained run under {paths.runs_dir()}; give a sweep name, a "
            "glob such as 'synth-*', or a list of run names"
        )
    return trained


def name_of(run: Path) -> str:
    """A run's name as RUN_NAME takes it: relative to runs/ where it lies there."""
    return (
        run.relative_to(paths.runs_dir()).as_posix()
        if run.is_relative_to(paths.runs_dir())
        else str(run)
    )


def leaderboard(runs: list[Path]) -> pd.DataFrame:
    """One row per run, best test accuracy first: accuracy, top-5, macro F1, ECE, training time,
    images/s, and the settings that differ between the runs. A run without metrics.json is
    listed as 'not evaluated' (last), not dropped."""
    rows = []
    for run in runs:
        params = read_json(run / "params.json", {})
        history = read_json(run / "history.json", [])
        metrics = read_json(run / "metrics.json", None)
        row = {"run": name_of(run), "status": "evaluated" if metrics else "not evaluated"}
        for key in ("accuracy", "top_k_accuracy", "f1_macro", "ece"):
            row[key] = (metrics or {}).get(key, float("nan"))
        # every accuracy names its data: runs trained on other data are measured on other data
        row["measured on"] = measured_on(metrics) if metrics else ""
        found = read_json(run / real.RESULT, {})
        row["real accuracy"] = found.get("accuracy", float("nan"))
        row["real data"] = found.get("described", "")
        row["best validation"] = max((r["val_acc"] for r in history), default=float("nan"))
        row["training s"] = sum(r["seconds"] for r in history)
        seen = sum(r.get("images", r["images_per_s"] * r["seconds"]) for r in history)
        row["images/s"] = seen / row["training s"] if row["training s"] else float("nan")
        row |= {k: _shown(params.get(k, "resnet18" if k == "model" else None)) for k in SETTINGS}
        rows.append(row)
    board = pd.DataFrame(rows).sort_values("accuracy", ascending=False, na_position="last")
    same = [k for k in SETTINGS if board[k].nunique(dropna=False) <= 1]
    return board.drop(columns=same).reset_index(drop=True)


def _shown(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def histories(runs: list[Path]) -> dict[str, list[dict]]:
    """Each run's history.json, by run name."""
    return {name_of(r): read_json(r / "history.json", []) for r in runs}


def class_differences(best: Path, baseline: Path) -> pd.DataFrame:
    """Per-class test accuracy (recall) of two evaluated runs and its difference, biggest gain
    first; classes either run lacks are left out."""
    reports = [read_json(r / "classification_report.json", None) for r in (best, baseline)]
    if None in reports:
        missing = [str(r) for r, rep in zip((best, baseline), reports, strict=True) if rep is None]
        raise ValueError(f"not evaluated: {', '.join(missing)} (run notebook 04 on it first)")
    a, b = reports
    labels = [k for k in a if k in b and isinstance(a[k], dict) and "(" in k]
    table = pd.DataFrame(
        {
            "class": labels,
            "code": [int(k.rsplit("(", 1)[1].rstrip(")")) for k in labels],
            "best": [a[k]["recall"] for k in labels],
            "baseline": [b[k]["recall"] for k in labels],
        }
    )
    table["difference"] = table["best"] - table["baseline"]
    return table.sort_values("difference", ascending=False).reset_index(drop=True)


def run_data(run: Path):
    """The data a run trained on (its params.json), for images of its classes."""
    source = read_json(run / "params.json", {}).get("data")
    if source is None:
        raise ValueError(f"{run}: the run does not record the data it trained on")
    return source


def ensemble_table(
    runs: list, *, per_class: int | None = None, split: str = "test"
) -> pd.DataFrame:
    """The first run alone, with test-time augmentation, and the ensemble of all `runs` (with
    and without TTA), on the same images: accuracy, top-k and the cost in forward passes per
    image. Members must share classes and input (else ValueError)."""
    from charlib.inference.evaluate import metrics, predict_split

    if len(runs) < 1:
        raise ValueError("no run to evaluate")
    ways = [([runs[0]], False), ([runs[0]], True)]
    ways += [(list(runs), False), (list(runs), True)] if len(runs) > 1 else []
    rows = []
    for members, tta in ways:
        found = metrics(predict_split(members, split, per_class=per_class, tta=tta))
        rows.append(
            {
                "predictor": " + ".join(name_of(paths.resolve_run(m)) for m in members)
                + (" with TTA" if tta else ""),
                "accuracy": found["accuracy"],
                "top_k_accuracy": found["top_k_accuracy"],
                "forward passes per image": len(members) * (7 if tta else 1),
            }
        )
    return pd.DataFrame(rows)


def top_runs(board: pd.DataFrame, top: int) -> list[str]:
    """The names of the `top` best evaluated runs of a leaderboard."""
    return board[board.status == "evaluated"].run.tolist()[:top]
