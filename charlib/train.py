"""Training: two recipes, `fit` (early stopping, atomic checkpoints, resume) and the epoch loop.

recipe="seed" is the seed project's, the baseline of every speed claim (224 px RGB, PIL
augmentation in DataLoader workers, Adam, ReduceLROnPlateau); recipe="fast" keeps the training
set on the device and augments whole batches there (one-cycle, label smoothing). Every
difference between the two is a value in `RECIPES`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charlib import augment as aug
from charlib import budget, checkpoint, distributed, ink, paths, photos, preprocess
from charlib.batches import SOURCES
from charlib.env import device_name, environment
from charlib.files import read_json, write_json
from charlib.model import DEFAULT_MODEL, MODELS, build, evaluate_loss, forward, prepare
from charlib.progress import bar, report
from charlib.schedule import Schedule, optimizer

RECIPES = {
    "seed": {
        "img_size": 224,
        "channels": 3,
        "stem": "imagenet",
        "normalization": "imagenet",
        "batch_size": 64,
        "lr": 1e-3,
        "epochs": 50,
        "label_smoothing": 0.0,
        "batches": "workers",  # per-image PIL transforms in DataLoader workers
        "optimizer": "adam",
        "weight_decay": 0.0,
        "schedule": "plateau",  # ReduceLROnPlateau on validation accuracy, once per epoch
    },
    "fast": {
        "img_size": None,
        "channels": 1,
        "stem": "small",
        "normalization": "half",
        "batch_size": 1024,  # on an H200: 66k images/s and 86% validation in 12 s, vs 43k
        "lr": 5e-3,  # and 18 s at 512 / 3e-3 (benchmarks/results/train_speed-gpu-*.json)
        "epochs": 15,
        "label_smoothing": 0.1,
        "batches": "device",  # one uint8 tensor on the device, batched augmentation there
        "optimizer": "adamw",
        "weight_decay": 5e-4,
        "schedule": "one-cycle",  # OneCycleLR, once per batch
    },
}
# On a CPU a small-stem ResNet-18 trains at about 60 images/s on 2 cores: the CPU default uses
# the ImageNet stem at native size (about 10x faster) and fewer epochs, so `make run` fits.
CPU_DEFAULTS = {"fast": {"stem": "imagenet", "epochs": 6, "batch_size": 256, "lr": 3e-3}}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_params(
    recipe: str = "fast", *, device: str = "auto", time_budget=None, **overrides
) -> dict:
    """Every knob of a run: the recipe's defaults (CPU-sized on a CPU), then the overrides.

    `time_budget`: seconds for the whole of `fit`, None (no limit) or "auto" (`budget.CPU_BUDGET`
    on a CPU, none on a GPU, which keeps its epoch count).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected 'fast' or 'seed'")
    dev = device_name(device)
    params = {"recipe": recipe, "device": dev, **RECIPES[recipe]}
    if dev == "cpu":
        params.update(CPU_DEFAULTS.get(recipe, {}))
    params.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("epochs", "batch_size"):
        if not isinstance(params[key], int) or params[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {params[key]!r}")
    if not params["lr"] > 0:
        raise ValueError(f"lr must be positive, got {params['lr']!r}")
    params.setdefault("model", DEFAULT_MODEL)
    if params["model"] not in MODELS:
        raise ValueError(f"unknown model {params['model']!r}; expected one of {', '.join(MODELS)}")
    if time_budget == "auto":
        time_budget = budget.CPU_BUDGET if dev == "cpu" else None
    params["time_budget"] = budget.check(time_budget)
    return params


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
    *,
    run_dir,
    recipe: str = "fast",
    device: str = "auto",
    seed: int = 0,
    model: str = DEFAULT_MODEL,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    img_size: int | None = None,
    stem: str | None = None,
    pretrained: bool = False,
    compile: bool | str = False,
    ema: bool = False,
    augmentation: dict | None = None,
    patience: int = 15,
    checkpoint_every: int = 10,
    num_workers: int = 4,
    resume: bool = True,
    overwrite: bool = False,
    time_budget=None,
    steps_per_epoch: int | None = None,
    smoke: bool = False,
    progress: bool = True,
    callback=None,
    data_source: str | None = None,
    init_from: str | os.PathLike | None = None,
    extra: dict | None = None,
) -> dict:
    """Train a model (ResNet-18 unless `model` names another of `model.MODELS`) on `train`
    (CharData), select by `val` accuracy; returns a summary.

    Writes run_dir/params.json, history.json, last.pt (every epoch), best.pt, epoch_NNN.pt (every
    `checkpoint_every`). resume=True continues from last.pt; a trained run_dir is otherwise
    refused unless overwrite=True (smoke runs may replace smoke runs). `time_budget` (seconds,
    "auto", None) sizes the run (`budget`); `steps_per_epoch` fixes its share of the data per
    epoch (`reproduce`); `callback(record, history)` runs after each epoch; `data_source` is
    recorded for evaluation; `init_from`: a checkpoint of the same model and classes to start
    from (`finetune`); `extra`: more facts for params.json."""
    start, group = time.perf_counter(), distributed.join(device)  # torchrun's, or this alone
    knobs = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "img_size": img_size}
    knobs |= {"stem": stem, "model": model, "steps_per_epoch": steps_per_epoch}  # None: default
    params = resolve_params(recipe, device=device, time_budget=time_budget, **knobs)
    params |= _run_facts(train, val, params, data_source) | _world(params, group)
    params |= {"pretrained": pretrained, "compile": compile, "ema": ema, "seed": seed}
    params |= {"patience": patience, "checkpoint_every": checkpoint_every, "smoke": smoke}
    params |= {"init_from": init_from and str(init_from), **(extra or {})}
    params["augmentation"] = aug.settings(augmentation)  # checked before anything starts
    run_dir = Path(run_dir)
    resuming = resume and (run_dir / "last.pt").is_file()
    check_target(run_dir, resume=resume, overwrite=overwrite, smoke=smoke)
    run_dir.mkdir(parents=True, exist_ok=True)
    t = _setup(distributed.shard(_through_photos(train, params), group), params, num_workers, group)
    val = distributed.shard(val, group, equal=False)  # validated in parts, then summed
    _plan(t, val, run_dir if resuming else None, start)
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


def _run(t: _Training, val, run_dir: Path, resume: bool, *, progress: bool, callback) -> list:
    """From the start (or last.pt) to the last epoch; rank 0 writes; the process group closes."""
    try:
        best = _start(t, run_dir, resume)
        if t.group.main:
            write_json(run_dir / "params.json", {**t.params, "environment": environment()})
        return _loop(t, val, run_dir, best, progress=progress and t.group.main, callback=callback)
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


def _plan(t: _Training, val, resumed: Path | None, start: float) -> None:
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


def _loop(t: _Training, val, run_dir: Path, best: dict, *, progress: bool, callback) -> list:
    """The epochs after the last finished one, until the last or early stopping; the history."""
    history, done = best.pop("history"), best.pop("epoch")
    epochs = t.params["epochs"]
    todo = range(done + 1, epochs + 1)
    epochs_bar = bar(todo, enabled=progress, desc="epochs", initial=done, total=epochs)
    took = []
    for epoch in epochs_bar:
        start = time.perf_counter()
        record = _epoch(t, val, epoch, progress)
        history.append(record)
        _save(t, run_dir, history, best)
        took.append(time.perf_counter() - start)
        if t.group.main:
            report(epoch_line(record, epochs, took))
        epochs_bar.set_postfix(
            val_acc=f"{record['val_acc']:.3f}", best=f"{best['best_val_acc']:.3f}"
        )
        if callback is not None:
            callback(record, history)
        if epoch - best["best_epoch"] >= t.params["patience"]:
            break
    return history


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


@dataclass
class _Training:
    """What the epoch loop works on: the model (and its compiled step), batches, optimiser."""

    params: dict
    dev: torch.device
    model: torch.nn.Module
    step: torch.nn.Module
    batches: object
    opt: torch.optim.Optimizer
    averaged: torch.optim.swa_utils.AveragedModel | None
    group: distributed.Group = distributed.ALONE  # torchrun's processes (rank 0 writes)
    schedule: Schedule | None = None  # built once the run is planned (`_plan`)

    @property
    def judge(self) -> torch.nn.Module:
        """The model validation selects with: the weight average when there is one."""
        return self.averaged.module if self.averaged is not None else self.model


def _setup(
    train, params: dict, num_workers: int, group: distributed.Group = distributed.ALONE
) -> _Training:
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
    batches = SOURCES[params["batches"]](train, params, dev, num_workers)
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
    return _Training(params, dev, model, step, batches, opt, averaged, group)


def _start(t: _Training, run_dir: Path, resume: bool) -> dict:
    """Continue from last.pt (resume) or start fresh; returns epoch, history and the best so far."""
    last = run_dir / "last.pt"
    if resume and last.is_file():
        return checkpoint.restore(last, t)
    # A fresh run: no checkpoint of an earlier run may pass for one of this run.
    if t.group.main:
        for old in [*run_dir.glob("*.pt"), run_dir / "history.json"]:
            old.unlink(missing_ok=True)
    distributed.from_main(t.group, None)  # the others wait until it is done
    return {"epoch": 0, "history": [], "best_val_acc": -1.0, "best_epoch": 0}


def _epoch(t: _Training, val, epoch: int, progress: bool) -> dict:
    """Train one epoch, validate, step the schedule; returns the epoch's history record."""
    start = time.perf_counter()
    train_loss, train_acc = _train_epoch(t, epoch, progress)
    seconds = time.perf_counter() - start
    val_loss, val_acc = _validate(t, val)
    t.schedule.epoch_done(val_acc)
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": t.opt.param_groups[0]["lr"],
        "seconds": round(seconds, 3),
        "images": t.batches.images_per_epoch * t.group.world,
        "images_per_s": round(t.batches.images_per_epoch * t.group.world / seconds, 1),
    }


def _validate(t: _Training, val) -> tuple[float, float]:
    """Mean loss and accuracy on the validation split; each rank's part summed across ranks."""
    loss, acc = evaluate_loss(t.judge, val, t.params, t.dev) if len(val) else (0.0, 0.0)
    n = len(val)
    loss_sum, correct, count = distributed.total(t.group, loss * n, acc * n, n)
    return loss_sum / max(count, 1), correct / max(count, 1)


def epoch_line(record: dict, epochs: int, took: list[float]) -> str:
    """'epoch 2/6  loss 1.234  validation 81.2%  41 s  about 2 min 44 s left' for the terminal."""
    left = (epochs - record["epoch"]) * sum(took) / len(took)
    eta = f"about {int(left // 60)} min {left % 60:.0f} s left" if left >= 60 else ""
    eta = eta or (f"about {left:.0f} s left" if record["epoch"] < epochs else "done")
    return (
        f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.3f}  "
        f"validation {record['val_acc']:.1%}  {took[-1]:.0f} s  {eta}"
    )


def _train_epoch(t: _Training, epoch: int, progress: bool) -> tuple[float, float]:
    t.step.train()
    total_loss = torch.zeros((), device=t.dev)
    correct = torch.zeros((), device=t.dev, dtype=torch.long)
    seen = 0
    batches = bar(
        t.batches.epoch(epoch),
        enabled=progress,
        total=len(t.batches),
        leave=False,
        desc=f"epoch {epoch}",
    )
    for x, y in batches:
        logits = forward(t.step, x, t.dev)
        # float32 loss, as autocast itself would compute cross-entropy
        loss = F.cross_entropy(logits.float(), y, label_smoothing=t.params["label_smoothing"])
        t.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.opt.step()
        t.schedule.batch_done()
        if t.averaged is not None:
            t.averaged.update_parameters(t.model)
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    loss_sum, right, count = distributed.total(t.group, float(total_loss), float(correct), seen)
    return loss_sum / count, right / count


def _save(t: _Training, run_dir: Path, history: list[dict], best: dict) -> None:
    """last.pt every epoch, best.pt when validation improved, epoch_NNN.pt every few; history."""
    record = history[-1]
    improved = record["val_acc"] > best["best_val_acc"]
    if improved:
        best.update(best_val_acc=record["val_acc"], best_epoch=record["epoch"])
    if not t.group.main:  # every rank keeps `best`; rank 0 alone writes
        return
    ckpt = checkpoint.training_state(t, history, best)
    checkpoint.write_epoch(run_dir, ckpt, improved=improved, every=t.params["checkpoint_every"])
    write_json(run_dir / "history.json", history)


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
