"""The epoch loop: what it works on (`Training`), where it starts (fresh or from last.pt), each
epoch's training and validation, and what it writes after each (last.pt, best.pt, history.json).
`train.fit` sets it up and plans it; this runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from charlib.common.files import write_json
from charlib.common.progress import bar, report
from charlib.training import checkpoint, distributed
from charlib.training.model import evaluate_loss, forward
from charlib.training.schedule import Schedule


@dataclass
class Training:
    """What the epoch loop works on: the model (and its compiled step), batches, optimiser."""

    params: dict
    dev: torch.device
    model: torch.nn.Module
    step: torch.nn.Module
    batches: object
    opt: torch.optim.Optimizer
    averaged: torch.optim.swa_utils.AveragedModel | None
    group: distributed.Group = distributed.ALONE  # torchrun's processes (rank 0 writes)
    schedule: Schedule | None = None  # built once the run is planned (`train.plan`)

    @property
    def judge(self) -> torch.nn.Module:
        """The model validation selects with: the weight average when there is one."""
        return self.averaged.module if self.averaged is not None else self.model


def start(t: Training, run_dir: Path, resume: bool) -> dict:
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


def run_epochs(t: Training, val, run_dir: Path, best: dict, *, progress: bool, callback) -> list:
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


def _epoch(t: Training, val, epoch: int, progress: bool) -> dict:
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


def _validate(t: Training, val) -> tuple[float, float]:
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


def _train_epoch(t: Training, epoch: int, progress: bool) -> tuple[float, float]:
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


def _save(t: Training, run_dir: Path, history: list[dict], best: dict) -> None:
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
