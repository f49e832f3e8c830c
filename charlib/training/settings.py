"""Every setting of a training run, in one home: `Settings`, a frozen dataclass with one field per
setting and its help, and the two recipes as presets (`RECIPES`, with the CPU's own defaults).

Everything else is derived from it: the resolved parameters a run records in params.json
(`Settings.params`), `charlib train`'s flags (`add_flags`, `from_args`) and notebook 03's
parameters (`from_notebook`, upper-case names). Adding a setting is one field here (and its line
in notebook 03's parameters cell, which a test holds to these defaults). This module imports no
torch at import time, so the command line starts fast.

recipe="seed" is the seed project's, the baseline of every speed claim (224 px RGB, PIL
augmentation in DataLoader workers, Adam, ReduceLROnPlateau); recipe="fast" keeps the training
set on the device and augments whole batches there (one-cycle, label smoothing). Every
difference between the two is a value in `RECIPES`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace

from charlib.common.env import device_name

DEFAULT_MODEL = "resnet18"  # a name in `model.MODELS`

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
# Notebook 03 (and so `make run`) trains within a time budget unless told otherwise.
NOTEBOOK_DEFAULTS = {"time_budget": "auto"}


def _setting(default, help: str, *, kind=None, flag: bool = True, notebook: bool = True):
    """A field: its default, its help, the type its flag parses (`kind`), and whether it is a
    flag of `charlib train` and a parameter of notebook 03."""
    meta = {"help": help, "kind": kind, "flag": flag, "notebook": notebook}
    if isinstance(default, dict):  # a fresh one for each Settings
        return field(default_factory=default.copy, metadata=meta)
    return field(default=default, metadata=meta)


def parse_budget(text: str):
    """--time-budget: 'auto', 'none' or seconds (their sign is checked with the settings)."""
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--time-budget takes seconds, 'auto' or 'none', got {text!r}") from None


@dataclass(frozen=True)
class Settings:
    """A training run's settings; None means the recipe's default for the device."""

    recipe: str = _setting("fast", "fast (batched augmentation on the device) or seed (baseline)")
    model: str = _setting(DEFAULT_MODEL, "a model.MODELS name: resnet34, mobilenet_v3_small, ...")
    device: str = _setting("auto", "auto (CUDA when present), cuda or cpu")
    epochs: int | None = _setting(None, "default: the recipe's (fast: 15 GPU, 6 CPU)", kind=int)
    batch_size: int | None = _setting(None, "per process (default: the recipe's)", kind=int)
    lr: float | None = _setting(None, "peak, for one process (scaled by N)", kind=float)
    img_size: int | None = _setting(None, "pixels (default: the data's; seed: 224)", kind=int)
    stem: str | None = _setting(None, "small (3x3) or imagenet (7x7/2 + max-pool)")
    time_budget: float | str | None = _setting(
        None, "seconds for the whole training, auto (CPU: 330) or none", kind=parse_budget
    )
    seed: int = _setting(0, "weights, batches and augmentation", kind=int)
    pretrained: bool = _setting(False, "start from ImageNet weights (downloaded once)")
    compile: bool | str = _setting(False, "torch.compile the model (or a backend's name)")
    ema: bool = _setting(False, "select with an exponential moving average of the weights")
    augmentation: dict = _setting({}, "magnitudes over the defaults", flag=False)
    patience: int = _setting(15, "epochs without a better validation before stopping", kind=int)
    checkpoint_every: int = _setting(10, "keep epoch_NNN.pt every N epochs", kind=int)
    num_workers: int = _setting(4, "DataLoader workers (seed recipe)", kind=int, notebook=False)
    steps_per_epoch: int | None = _setting(None, "batches per epoch", flag=False, notebook=False)
    smoke: bool = _setting(False, "a quick check (tiny data, 1 epoch)", flag=False)

    def but(self, **changes) -> Settings:
        """These settings with some changed by name; an unknown name is refused in one line."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(
                f"unknown training setting(s) {unknown}; the settings are "
                f"{', '.join(f.name for f in fields(self))}"
            )
        return replace(self, **changes)

    def params(self) -> dict:
        """What the run records: the recipe's values (the CPU's on a CPU), then every setting
        given, checked; "auto" resolved (device, time budget) and augmentation filled in."""
        from charlib.training import augment, budget  # torch: not for building the CLI
        from charlib.training.model import MODELS

        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; expected 'fast' or 'seed'")
        dev = device_name(self.device)
        params = {"recipe": self.recipe, "device": dev, **RECIPES[self.recipe]}
        if dev == "cpu":
            params |= CPU_DEFAULTS.get(self.recipe, {})
        resolved_here = ("recipe", "device", "time_budget", "augmentation")
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        params |= {k: v for k, v in given.items() if v is not None and k not in resolved_here}
        for key in ("epochs", "batch_size"):
            if not isinstance(params[key], int) or params[key] < 1:
                raise ValueError(f"{key} must be a positive integer, got {params[key]!r}")
        if not params["lr"] > 0:
            raise ValueError(f"lr must be positive, got {params['lr']!r}")
        if params["model"] not in MODELS:
            raise ValueError(
                f"unknown model {params['model']!r}; expected one of {', '.join(MODELS)}"
            )
        spent = self.time_budget
        if spent == "auto":
            spent = budget.CPU_BUDGET if dev == "cpu" else None
        params |= {"time_budget": budget.check(spent), "steps_per_epoch": self.steps_per_epoch}
        params["augmentation"] = augment.settings(self.augmentation)
        return params


def notebook_defaults() -> dict[str, object]:
    """Notebook 03's parameters that are settings -> their defaults there."""
    defaults = Settings()
    shown = {
        f.name.upper(): getattr(defaults, f.name)
        for f in fields(Settings)
        if f.metadata["notebook"]
    }
    return shown | {k.upper(): v for k, v in NOTEBOOK_DEFAULTS.items()}


def from_notebook(parameters: dict) -> Settings:
    """Settings from notebook 03's (upper-case) parameters; other names are left alone."""
    names = [f.name for f in fields(Settings)]
    return Settings(**{n: parameters[n.upper()] for n in names if n.upper() in parameters})


def add_flags(parser: argparse.ArgumentParser) -> None:
    """`--batch-size` and the like, one per setting that is a flag, help from the field."""
    for f in fields(Settings):
        if not f.metadata["flag"]:
            continue
        flag, kind, text = "--" + f.name.replace("_", "-"), f.metadata["kind"], f.metadata["help"]
        if f.name == "compile":  # alone: inductor; or a backend's name
            parser.add_argument(flag, nargs="?", const=True, default=False, help=text)
        elif f.default is False:
            parser.add_argument(flag, action="store_true", help=text)
        else:  # numbers parsed by argparse; anything else by `from_args`, in one line
            parsed = kind if kind in (int, float) else str
            parser.add_argument(flag, type=parsed, default=f.default, help=text)


def from_args(args: argparse.Namespace) -> Settings:
    """The settings `add_flags` put on a parsed command line."""
    given = {}
    for f in (f for f in fields(Settings) if f.metadata["flag"]):
        value, kind = getattr(args, f.name), f.metadata["kind"]
        parsed_here = kind not in (None, int, float) and isinstance(value, str)  # see add_flags
        given[f.name] = kind(value) if parsed_here else value
    return Settings(**given)
