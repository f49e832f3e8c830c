"""The checkpoint format: plain dicts of tensors and values, saved atomically, loaded safely.

A checkpoint loads with `torch.load(..., weights_only=True)`: no pickled objects, so a file from a
stranger cannot run code. `last.pt` holds everything a resumed run needs (optimizer, schedule,
EMA, history); `best.pt` and `epoch_NNN.pt` only what inference needs.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch

from charlib.common.files import save_torch
from charlib.training.model import build
from charlib.training.settings import DEFAULT_MODEL

FORMAT = "charlib-checkpoint-1"
# Knobs a resumed run must share with the run it continues.
RESUME_KEYS = (
    "recipe",
    "world_size",  # shards and learning rate follow the number of processes
    "model",
    "stem",
    "channels",
    "img_size",
    "classes",
    "normalization",
    "ema",
    "epochs",
    "batch_size",
    "lr",
)
# What inference needs: the weights, classes, params and metrics (no optimizer).
INFERENCE_KEYS = ("format", "model", "epoch", "classes", "params", "best_val_acc", "best_epoch")
# Pickle opcodes that import a name or call one: what a hostile file needs to run its code.
CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}
LEGACY_PICKLES = 5  # magic number, protocol, system info, the checkpoint, its storage keys


def state_of(model) -> dict:
    """A model's state dict (of the original module when it was torch.compile'd)."""
    return getattr(model, "_orig_mod", model).state_dict()


def training_state(t, history: list[dict], best: dict) -> dict:
    """Everything `last.pt` holds: the judged weights, the training state, params and history.

    `t` is the training in progress (`judge`, `model`, `opt`, `schedule`, `averaged`, `params`);
    its judge is the model validation selects with (the EMA model when there is one). `best`
    holds best_val_acc and best_epoch.
    """
    return {
        "format": FORMAT,
        "model": state_of(t.judge),
        # The weights being trained, when they differ from the judged ones (EMA); else None,
        # which halves what every epoch writes.
        "train_model": state_of(t.model) if t.averaged is not None else None,
        "optimizer": t.opt.state_dict(),
        "scheduler": t.schedule.state_dict(),
        "ema": t.averaged.state_dict() if t.averaged is not None else None,
        "epoch": history[-1]["epoch"],
        "classes": t.params["classes"],
        "params": t.params,
        "history": list(history),
        "best_val_acc": best["best_val_acc"],
        "best_epoch": best["best_epoch"],
    }


def for_inference(ckpt: dict) -> dict:
    """The part of a training checkpoint that `best.pt` keeps, with its validation accuracy."""
    return {k: ckpt[k] for k in INFERENCE_KEYS} | {"val_acc": ckpt["history"][-1]["val_acc"]}


def of_model(model, params: dict, *, epoch: int = 0, val_acc: float = 0.0) -> dict:
    """A best.pt-style checkpoint of `model` and the run params describing it (classes included)."""
    return {
        "format": FORMAT,
        "model": state_of(model),
        "classes": params["classes"],
        "params": params,
        "epoch": epoch,
        "best_val_acc": val_acc,
        "best_epoch": epoch,
        "val_acc": val_acc,
    }


def save(path, ckpt: dict) -> Path:
    """Write a checkpoint atomically (a crash leaves the old file or the new one)."""
    return save_torch(path, ckpt)


def write_epoch(run_dir: Path, ckpt: dict, *, improved: bool, every: int) -> None:
    """last.pt after every epoch; best.pt when validation improved; epoch_NNN.pt every few."""
    save(run_dir / "last.pt", ckpt)
    if improved:
        save(run_dir / "best.pt", for_inference(ckpt))
    if every and ckpt["epoch"] % every == 0:
        save(run_dir / f"epoch_{ckpt['epoch']:03d}.pt", for_inference(ckpt))


def load(path) -> dict:
    """A checkpoint written by `fit`, loaded safely (weights_only: no code can run).

    Every failure is one line: a file whose loading would run code is refused as such, anything
    else (truncated, not a PyTorch file) says so with the first line of the cause.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; train first or check RUN_NAME")
    try:
        with warnings.catch_warnings():
            # torch's warning about a foreign pickle protocol, advice on stderr beside our line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if carries_code(path):
            raise ValueError(
                f"{path}: refused: loading this file would run code it carries (it is not a "
                "plain charlib checkpoint); only load checkpoints you trained or trust"
            ) from None
        raise ValueError(f"{path}: not a safe charlib checkpoint ({cause(e)})") from None
    except Exception as e:  # truncated file, not a torch file
        raise ValueError(f"{path}: not a safe charlib checkpoint ({cause(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a charlib checkpoint (format {FORMAT} expected)")
    return ckpt


def carries_code(path: Path) -> bool:
    """Whether a checkpoint's pickles (in its zip, or a legacy file's first few) import or call.

    Asked once the safe loader refused the file: a pickle with such opcodes was refused for
    them; bytes that do not parse as a pickle merely make it no checkpoint.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pkl = next(n for n in zf.namelist() if n.endswith("data.pkl"))
                stream = io.BytesIO(zf.read(pkl))
        else:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
    except (OSError, StopIteration, zipfile.BadZipFile):
        return False
    seen = set()
    with stream:
        for _ in range(LEGACY_PICKLES):  # a legacy torch file: a few pickles, then raw tensors
            try:
                seen |= {op.name for op, _, _ in pickletools.genops(stream)}
            except Exception:  # the bytes after the last pickle, or no pickle at all
                break
    return bool(seen & CODE_OPCODES)


def cause(e: Exception) -> str:
    """An error as one short line, never torch's advice to load with weights_only off."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    if "weights only" in first.lower().replace("_", " "):
        first = "unreadable as a PyTorch file"
    elif not first and isinstance(e, EOFError):
        first = "the file is empty or cut short"
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def model_from_checkpoint(ckpt: dict, device: str = "cpu"):
    """The model a checkpoint describes, with its weights, in eval mode on `device`."""
    p = ckpt["params"]
    name = p.get("model", DEFAULT_MODEL)  # runs from before MODEL existed are ResNet-18s
    net = build(name, len(ckpt["classes"]), stem=p["stem"], in_channels=p["channels"])
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"checkpoint weights do not fit its own description ({name}, {len(ckpt['classes'])} "
            f"classes, {p['stem']} stem, {p['channels']} channel(s)): {first}; retrain or use "
            "another run"
        ) from None
    return net.to(device).eval()


def check_resume(ckpt: dict, params: dict, where: Path) -> None:
    """Refuse to continue a run whose checkpoint was trained with other settings."""
    old = {"model": DEFAULT_MODEL} | ckpt["params"]
    diff = [k for k in RESUME_KEYS if old.get(k) != params.get(k)]
    if diff:
        raise ValueError(
            f"{where}: holds a run with other {', '.join(diff)}; choose another run "
            "name, or pass resume=False to start over"
        )


def restore(path: Path, t) -> dict:
    """Load `last.pt` into the training `t`; returns the epoch, history and the best so far."""
    ckpt = load(path)
    check_resume(ckpt, t.params, path.parent)
    trained = ckpt.get("train_model")
    t.model.load_state_dict(ckpt["model"] if trained is None else trained)
    t.opt.load_state_dict(ckpt["optimizer"])
    t.schedule.load_state_dict(ckpt["scheduler"])
    if t.averaged is not None:
        t.averaged.load_state_dict(ckpt["ema"])
    return {
        "epoch": ckpt["epoch"],
        "history": ckpt["history"],
        "best_val_acc": ckpt["best_val_acc"],
        "best_epoch": ckpt["best_epoch"],
    }


# What members of an ensemble must share: one input for all, one meaning for every output.
MEMBER_KEYS = ("img_size", "channels", "normalization", "data_size")


def check_members(ckpts: list[dict], names: list[str]) -> None:
    """Refuse, in one line, an ensemble whose members differ in classes or input."""
    if not ckpts:
        raise ValueError("an ensemble needs at least one run")
    first, p0 = ckpts[0], ckpts[0]["params"]
    for ckpt, name in zip(ckpts[1:], names[1:], strict=True):
        if list(ckpt["classes"]) != list(first["classes"]):
            raise ValueError(
                f"{name} has other classes than {names[0]} ({len(ckpt['classes'])} vs "
                f"{len(first['classes'])}); ensemble members must share classes"
            )
        for key in MEMBER_KEYS:
            if ckpt["params"].get(key) != p0.get(key):
                raise ValueError(
                    f"{name} has {key} {ckpt['params'].get(key)!r}, {names[0]} "
                    f"{p0.get(key)!r}; ensemble members must share image size and input"
                )
