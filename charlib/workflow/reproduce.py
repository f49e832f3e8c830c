"""Reproducing a run: retrain from its params.json (same data, seed and settings, and a budgeted
run's own plan instead of a new measurement) into a new run, evaluate both, compare."""

from __future__ import annotations

import json

import pandas as pd
import torch

from charlib.common.paths import resolve_run
from charlib.data import loading
from charlib.inference.evaluate import evaluate_run, metrics, predict_split
from charlib.training import train
from charlib.training.settings import Settings

COMPARED = ("accuracy", "top_k_accuracy", "f1_macro", "ece")


def reproduce(run, into=None, *, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Retrain `run` into `into` (default '<run>-reproduced', never an existing trained run)
    with deterministic algorithms, evaluate both on the test split; one row per metric."""
    source = resolve_run(run)
    p = json.loads((source / "params.json").read_text())
    target = resolve_run(into or f"{source.name}-reproduced", trained=False)
    train.check_target(target, resume=False, overwrite=False)
    ds = loading.load_dataset(p["data"], seed=p["seed"], progress=progress)
    train_set, val_set = (
        loading.smoke_subsets(ds, p["seed"]) if p.get("smoke") else (ds.train, ds.validation)
    )
    recorded = ("recipe", "seed", "epochs", "batch_size", "lr", "img_size", "stem", "model")
    recorded += ("pretrained", "ema", "augmentation", "patience", "checkpoint_every")
    recorded += ("steps_per_epoch", "smoke")  # the plan a budget made, not the budget again
    settings = Settings(device=device).but(**{k: p[k] for k in recorded if k in p})
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        train.fit(
            train_set, val_set, settings, run_dir=target, data_source=p["data"], progress=progress
        )
    finally:
        torch.use_deterministic_algorithms(deterministic)
    per_class = 4 if p.get("smoke") else None
    # the original is measured, not rewritten; the reproduction gets its own metrics.json
    before = metrics(predict_split(source, "test", device=device, per_class=per_class))
    after = evaluate_run(target, device=device, per_class=per_class, figures=False)
    table = pd.DataFrame(
        {
            "metric": COMPARED,
            source.name: [before[k] for k in COMPARED],
            target.name: [after[k] for k in COMPARED],
        }
    )
    table["difference"] = table[target.name] - table[source.name]
    return table
