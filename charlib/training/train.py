"""Training: `fit` (early stopping, atomic checkpoints, resume, time budgets, torchrun) and how
it sets up and plans the epoch loop (`loop`). Its settings, the recipes among them, live in
`settings`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from charlib.common import paths
from charlib.common.env import environment
from charlib.common.files import read_json, write_json
from charlib.common.progress import report
from charlib.data import photos
from charlib.training import budget, checkpoint, distributed, loop
from charlib.training.batches import SOURCES
from charlib.training.model import build, prepare
from charlib.training.schedule import Schedule, optimizer
from charlib.training.settings import Settings
from charlib.vision import ink, preprocess


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_target(run_dir, *, resume: bool, overwrite: bool, smoke: bool = False) -> None:
    """Refuse, in one line, to start over in a folder holding a trained run: the user's work is
    replaced only when asked (overwrite), continued only when asked (resume). A smoke check may
    replace an earlier smoke check."""
    run_dir = Path(run_dir)
    if run_dir.resolve() == (paths.runs_dir() / paths.REFERENCE_RUN).resolve():
        raise ValueError(
            f"{run_dir} holds a copy of the shipped reference model; train into another run "
            "name (fine-tune it with `charlib finetune --run reference`)"
        )
    held = [n for n in ("best.pt", "last.pt") if (run_dir / n).is_file()]
    if not held or overwrite or (resume and "last.pt" in held):
        return
    earlier, history = (
        read_json(run_dir / n, d) for n, d in (("params.json", {}), ("history.json", []))
    )
    if smoke and earlier.get("smoke"):
        return
    what = ", ".join(held)
    if history:
        what = f"{len(history)} epochs, best validation {max(r['val_acc'] for r in history):.1%}"
    raise ValueError(
        f"{run_dir} already holds a trained run ({what}); "
        "choose another run name, or overwrite it (OVERWRITE=True, --overwrite) or continue it "
        "(RESUME=True)"
    )


def fit(
    train,
    val,
    settings: Settings | None = None,
    *,
    run_dir,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    callback=None,
    data_source: str | None = None,
    init_from: str | os.PathLike | None = None,
    extra: dict | None = None,
    **changes,
) -> dict:
    """Train a model on `train` (CharData) with `settings` (`Settings()` when None, with
    `changes` by name on top: `fit(tr, va, run_dir=d, epochs=2)`), select by `val` accuracy;
    returns a summary.

    Writes run_dir/params.json, history.json, last.pt (every epoch), best.pt, epoch_NNN.pt (every
    `checkpoint_every`). resume=True continues from last.pt; a trained run_dir is otherwise
    refused unless overwrite=True (smoke runs may replace smoke runs). `callback(record,
    history)` runs after each epoch; `data_source` is recorded for evaluation; `init_from`: a
    checkpoint of the same model and classes to start from (`finetune`); `extra`: more facts
    for params.json."""
    settings = (settings or Settings()).but(**changes)
    start, group = time.perf_counter(), distributed.join(settings.device)  # torchrun's, or alone
    params = settings.params()  # checked before anything starts
    params |= _run_facts(train, val, params, data_source) | _world(params, group)
    params |= {"init_from": init_from and str(init_from), **(extra or {})}
    run_dir = Path(run_dir)
    resuming = resume and (run_dir / "last.pt").is_file()
    check_target(run_dir, resume=resume, overwrite=overwrite, smoke=settings.smoke)
    run_dir.mkdir(parents=True, exist_ok=True)
    t = _setup(distributed.shard(_through_photos(train, params), group), params, group)
    val = distributed.shard(val, group, equal=False)  # validated in parts, then summed
    plan(t, val, run_dir if resuming else None, start)
    history = _run(t, val, run_dir, resume, progress=progress, callback=callback)
    return summarize(history, params, run_dir) | {"fit_seconds": time.perf_counter() - start}


def _through_photos(train, params: dict):
    """The training images with the augmentation "photo"'s share seen through photos and the
    cleaner (seeded by the run's seed; the run's ink fill and stroke width already measured)."""
    share = params["augmentation"]["photo"]
    if not share:
        return train
    began = time.perf_counter()
    images, replaced = photos.through_cleaner(
        train.images,
        share,
        seed=params["seed"],
        fill=params["ink_fill"],
        width=params["stroke_width"],
    )
    params["photo_seconds"] = round(time.perf_counter() - began, 1)  # outside the time budget
    report(
        f"photo augmentation: {replaced:,} of {len(train):,} training images through the cleaner"
    )
    return replace(train, images=images)


def _run(t: loop.Training, val, run_dir: Path, resume: bool, *, progress: bool, callback) -> list:
    """From the start (or last.pt) to the last epoch; rank 0 writes; the process group closes."""
    try:
        best = loop.start(t, run_dir, resume)
        if t.group.main:
            write_json(run_dir / "params.json", {**t.params, "environment": environment()})
        return loop.run_epochs(
            t, val, run_dir, best, progress=progress and t.group.main, callback=callback
        )
    finally:
        distributed.leave(t.group)


def _world(params: dict, group: distributed.Group) -> dict:
    """Several processes: each its own device; the learning rate scaled to the global batch
    (batch_size is each rank's; linear scaling from one process's lr)."""
    if not group.active:
        return {}
    return {
        "device": distributed.device_for(group, params["device"]),
        "world_size": group.world,
        "global_batch": params["batch_size"] * group.world,
        "lr": params["lr"] * group.world,
        "lr_one_process": params["lr"],
    }


def plan(t: loop.Training, val, resumed: Path | None, start: float) -> None:
    """Size the run to its time budget (measured here, or the resumed run's own plan), then
    build the schedule over the steps it will take."""
    p = t.params
    if resumed is not None:
        earlier = read_json(resumed / "params.json", {})
        if earlier.get("plan"):  # a budgeted run goes on as planned, whatever is passed now
            p |= {k: earlier[k] for k in ("epochs", "steps_per_epoch", "plan", "time_budget")}
        else:  # a run started without a budget goes on without one
            p["time_budget"] = None
    elif p["time_budget"] is not None:
        step, overhead = budget.measure(t, val)
        plan = budget.choose(
            p["time_budget"],
            # preparing photos (the augmentation "photo") is data preparation, not training
            p["time_budget"] - (time.perf_counter() - start - p.get("photo_seconds", 0.0)),
            epochs=p["epochs"],
            full_steps=len(t.batches),
            step_seconds=step,
            epoch_overhead=overhead,
        )
        plan = distributed.from_main(t.group, plan)  # every rank follows rank 0's plan
        p |= {"epochs": plan.epochs, "steps_per_epoch": plan.steps, "plan": plan.record()}
        if t.group.main:
            report(plan.describe(p["batch_size"] * t.group.world))
    t.batches.limit = p.get("steps_per_epoch")
    t.schedule = Schedule(t.opt, p, steps_per_epoch=len(t.batches))


def _run_facts(train, val, params: dict, data_source) -> dict:
    """What the data tells about a run: classes, sizes, source, and how much the ink fills."""
    if tuple(train.classes) != tuple(val.classes):
        raise ValueError("train and validation have different class lists; load them together")
    data_size = int(train.images.shape[-1])
    return {
        "img_size": params["img_size"] or data_size,
        "classes": [int(c) for c in train.classes],
        "train_images": len(train),
        "val_images": len(val),
        "data": None if data_source is None else str(data_source),
        "data_size": data_size,
        "ink_fill": preprocess.ink_fill(train.images),
        "stroke_width": ink.stroke_width(train.images),
    }


def _setup(train, params: dict, group: distributed.Group = distributed.ALONE) -> loop.Training:
    """Seed, build the model on the device, the batch source, optimiser and EMA."""
    dev = torch.device(params["device"])
    seed_everything(params["seed"])
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest
    net = build(
        params["model"],
        len(params["classes"]),
        stem=params["stem"],
        in_channels=params["channels"],
        pretrained=params["pretrained"],
    )
    if params.get("init_from"):
        net.load_state_dict(checkpoint.load(params["init_from"])["model"])
    model = prepare(net, dev)
    batches = SOURCES[params["batches"]](train, params, dev, params["num_workers"])
    opt = optimizer(model, params)
    averaged = None
    if params["ema"]:
        averaged = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999), use_buffers=True
        )
    step = distributed.wrap(model, group, dev)  # gradients all-reduced across ranks
    if params["compile"]:  # True: inductor; or a torch.compile backend's name ("aot_eager")
        backend = params["compile"] if isinstance(params["compile"], str) else "inductor"
        step = torch.compile(step, backend=backend)
    return loop.Training(params, dev, model, step, batches, opt, averaged, group)


def summarize(history: list[dict], params: dict, run_dir: Path) -> dict:
    """Best epoch, accuracies, time and throughput of a run, from its history."""
    if not history:
        raise ValueError(f"{run_dir}: no finished epoch to summarise")
    best = max(history, key=lambda r: r["val_acc"])
    seconds = sum(r["seconds"] for r in history)
    return {
        "run_dir": str(run_dir),
        "recipe": params["recipe"],
        "device": params["device"],
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_val_acc": best["val_acc"],
        "final_val_acc": history[-1]["val_acc"],
        "train_seconds": round(seconds, 2),
        "images_per_s": round(sum(r["images_per_s"] * r["seconds"] for r in history) / seconds, 1),
        "images_seen": sum(r.get("images", 0) for r in history),
        "time_budget": params.get("time_budget"),
    }
