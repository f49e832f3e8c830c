"""Training to a time budget: measure this machine's speed on a few real steps, then size the run.

The plan is fixed before the first epoch (epochs, and the steps of each epoch: on a slow machine
a share of the training set per epoch, a new random share each time), so the one-cycle schedule
still warms up and anneals completely. Validation and checkpoints are counted in.
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from charlib.training.model import forward, predict_logits

# The default for a CPU (`TIME_BUDGET="auto"`): what lets `make run` end within 12 minutes on a
# slow 2-core x86 machine; GPUs keep their epoch count.
CPU_BUDGET = 330.0
SAFETY = 0.9  # plan for this share of the time left: speeds wander by a few percent
VALIDATION_SHARE = 0.15  # at most this share of the budget goes to validation between epochs
CALIBRATION_STEPS = 3  # timed steps, after one untimed warm-up step
SAMPLE = 512  # validation images timed to estimate a whole validation pass


@dataclass
class Plan:
    """How a budget is spent: `epochs` epochs of `steps` batches, and the speeds it assumed."""

    budget: float
    epochs: int
    steps: int
    full_steps: int
    step_seconds: float
    epoch_overhead: float  # validation and checkpoints, per epoch

    @property
    def share(self) -> float:
        """The share of the training set each epoch sees."""
        return self.steps / self.full_steps

    def describe(self, batch_size: int) -> str:
        """One line: what the budget bought."""
        seconds = self.epochs * (self.steps * self.step_seconds + self.epoch_overhead)
        return (
            f"time budget {self.budget:.0f} s: {self.epochs} epochs of {self.steps} steps "
            f"({self.share:.0%} of the training set each, {self.epochs * self.steps * batch_size:,}"
            f" images), about {seconds:.0f} s at {batch_size / self.step_seconds:.0f} images/s"
        )

    def record(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def check(budget) -> float | None:
    """A budget in seconds (a positive number) or None; anything else is refused in one line."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(
            f"time budget must be a positive number of seconds, 'auto' or None, got {budget!r}"
        )
    if not math.isfinite(budget):
        return None
    return float(budget)


def choose(
    budget: float,
    left: float,
    *,
    epochs: int,
    full_steps: int,
    step_seconds: float,
    epoch_overhead: float,
) -> Plan:
    """The plan that trains most within `left` seconds: the recipe's epochs on all the data when
    they fit; else fewer epochs (validation kept under VALIDATION_SHARE of the time) and a share
    of the data per epoch. Refuses a budget too small for one step and one validation."""
    usable = left * SAFETY
    if epochs * (full_steps * step_seconds + epoch_overhead) <= usable:
        return Plan(budget, epochs, full_steps, full_steps, step_seconds, epoch_overhead)
    most = int(VALIDATION_SHARE * usable // max(epoch_overhead, 1e-9))
    n = max(1, min(epochs, most))
    steps = min(full_steps, int((usable / n - epoch_overhead) // step_seconds))
    if steps < 1:
        need = (step_seconds + epoch_overhead) / SAFETY + (budget - left)
        raise ValueError(
            f"time budget of {budget:g} s is too short for one training step and one validation "
            f"here ({step_seconds:.2f} s per step, {epoch_overhead:.1f} s to validate and save); "
            f"give at least {math.ceil(need)} s, or no budget"
        )
    return Plan(budget, n, steps, full_steps, step_seconds, epoch_overhead)


def measure(t, val) -> tuple[float, float]:
    """Seconds per training step and per epoch's validation and checkpoints, measured on real
    steps of `t` (the training in progress); its weights and optimiser are put back after."""
    weights = copy.deepcopy(t.model.state_dict())
    optimizer_state = copy.deepcopy(t.opt.state_dict())
    batches = iter(t.batches.epoch(0))
    t.step.train()
    times = []
    for _ in range(1 + CALIBRATION_STEPS):
        start = time.perf_counter()
        x, y = next(batches, (None, None))
        if x is None:
            break
        loss = F.cross_entropy(forward(t.step, x, t.dev).float(), y)
        t.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.opt.step()
        float(loss.detach())  # waits for the device
        times.append(time.perf_counter() - start)
    t.model.load_state_dict(weights)
    t.opt.load_state_dict(optimizer_state)
    step = sorted(times[1:] or times)[len(times[1:] or times) // 2]  # median, past the warm-up
    return step, _overhead(t, val)


def _overhead(t, val) -> float:
    """Seconds to validate on the whole `val` split and to write one epoch's checkpoints."""
    n = min(len(val), SAMPLE)
    start = time.perf_counter()
    if n:
        predict_logits(t.judge, val.images[:n], t.params, t.dev)
    validate = (time.perf_counter() - start) * len(val) / max(n, 1)
    start = time.perf_counter()
    torch.save({"model": t.model.state_dict(), "opt": t.opt.state_dict()}, io.BytesIO())
    save = (time.perf_counter() - start) * 3  # last.pt with optimiser state grows, best.pt
    return validate + save
