"""The training loop: two recipes, schedules, early stopping, atomic checkpoints, resume.

recipe="seed" is the seed project's, kept as the baseline of every speed claim: 224 px RGB,
ImageNet normalisation, PIL augmentation in a 4-worker DataLoader, batch 64, Adam 1e-3,
ReduceLROnPlateau. recipe="fast" keeps the training set on the device as one uint8 tensor and
augments whole batches there, with a one-cycle schedule and label smoothing.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charlib import augment as aug
from charlib import preprocess
from charlib.env import device_name, environment
from charlib.files import save_torch, write_json
from charlib.model import resnet18
from charlib.progress import bar

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
    },
}
# On a CPU a small-stem ResNet-18 trains at about 60 images/s on 2 cores: the CPU default uses
# the ImageNet stem at native size (about 10x faster) and fewer epochs, so `make run` fits.
CPU_FAST = {"stem": "imagenet", "epochs": 6, "batch_size": 256, "lr": 3e-3}
CHECKPOINT_FORMAT = "charlib-checkpoint-1"


def _accelerated(dev: torch.device) -> bool:
    """bf16 autocast and channels-last memory: on CUDA (tensor cores), not on CPU."""
    return dev.type == "cuda"


def _forward(model, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """model(x), in bf16 autocast with channels-last input where `_accelerated`."""
    fast = _accelerated(dev)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=fast):
        return model(x)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_params(recipe: str = "fast", *, device: str = "auto", **overrides) -> dict:
    """Every knob of a run: the recipe's defaults (CPU-sized on a CPU), then the overrides."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected 'fast' or 'seed'")
    dev = device_name(device)
    params = {"recipe": recipe, "device": dev, **RECIPES[recipe]}
    if recipe == "fast" and dev == "cpu":
        params.update(CPU_FAST)
    params.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("epochs", "batch_size"):
        if not isinstance(params[key], int) or params[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {params[key]!r}")
    if not params["lr"] > 0:
        raise ValueError(f"lr must be positive, got {params['lr']!r}")
    return params


def fit(
    train,
    val,
    *,
    run_dir,
    recipe: str = "fast",
    device: str = "auto",
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    img_size: int | None = None,
    stem: str | None = None,
    pretrained: bool = False,
    compile: bool = False,
    ema: bool = False,
    augmentation: dict | None = None,
    patience: int = 15,
    checkpoint_every: int = 10,
    num_workers: int = 4,
    resume: bool = True,
    progress: bool = True,
    callback=None,
    data_source: str | None = None,
) -> dict:
    """Train a ResNet-18 on `train` (CharData), select by `val` accuracy; returns a summary.

    Writes run_dir/params.json, history.json, last.pt (every epoch), best.pt and epoch_NNN.pt
    (every `checkpoint_every` epochs). With resume=True a run_dir holding last.pt continues
    after its last finished epoch. `callback(record, history)` runs after each epoch.
    `data_source` (a folder, zip or preset name) is recorded so evaluation can find the data.
    """
    if tuple(train.classes) != tuple(val.classes):
        raise ValueError("train and validation have different class lists; load them together")
    params = resolve_params(
        recipe,
        device=device,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        img_size=img_size,
        stem=stem,
    )
    data_size = int(train.images.shape[-1])
    params["img_size"] = params["img_size"] or data_size
    params.update(
        pretrained=pretrained,
        compile=compile,
        ema=ema,
        seed=seed,
        patience=patience,
        checkpoint_every=checkpoint_every,
        classes=[int(c) for c in train.classes],
        augmentation={**aug.DEFAULTS, **(augmentation or {})},
        train_images=len(train),
        val_images=len(val),
        data=None if data_source is None else str(data_source),
        data_size=data_size,
        ink_fill=preprocess.ink_fill(train.images),
    )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(params["device"])
    seed_everything(seed)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest
    model = resnet18(
        len(train.classes),
        stem=params["stem"],
        in_channels=params["channels"],
        pretrained=pretrained,
    ).to(dev)
    if _accelerated(dev):
        model = model.to(memory_format=torch.channels_last)
    loader = (
        _FastBatches(train, params, dev)
        if recipe == "fast"
        else _SeedBatches(train, params, num_workers, dev)
    )
    opt, sched = _optimizer(model, params, steps_per_epoch=len(loader))
    averaged = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999), use_buffers=True
        )
        if ema
        else None
    )
    state = {"epoch": 0, "history": [], "best_val_acc": -1.0, "best_epoch": 0}
    last = run_dir / "last.pt"
    if resume and last.is_file():
        state = _restore(last, params, model, opt, sched, averaged)
    else:  # a fresh run: no checkpoint of an earlier run may pass for one of this run
        for old in [*run_dir.glob("*.pt"), run_dir / "history.json"]:
            old.unlink(missing_ok=True)
    write_json(run_dir / "params.json", {**params, "environment": environment()})
    step = torch.compile(model) if compile else model
    history = state["history"]
    epochs_bar = bar(
        range(state["epoch"] + 1, params["epochs"] + 1),
        enabled=progress,
        desc="epochs",
        initial=state["epoch"],
        total=params["epochs"],
    )
    for epoch in epochs_bar:
        start = time.perf_counter()
        train_loss, train_acc = _train_epoch(
            step, loader, opt, sched, params, dev, epoch, averaged, progress
        )
        seconds = time.perf_counter() - start
        judge = averaged.module if averaged is not None else model
        val_loss, val_acc = evaluate_loss(judge, val, params, dev)
        if recipe == "seed":
            sched.step(val_acc)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(seconds, 3),
            "images_per_s": round(loader.images_per_epoch / seconds, 1),
        }
        history.append(record)
        improved = val_acc > state["best_val_acc"]
        if improved:
            state.update(best_val_acc=val_acc, best_epoch=epoch)
        ckpt = _checkpoint(judge, model, opt, sched, averaged, params, history, state, epoch)
        save_torch(last, ckpt)
        if improved:
            save_torch(run_dir / "best.pt", _weights_only(ckpt))
        if checkpoint_every and epoch % checkpoint_every == 0:
            save_torch(run_dir / f"epoch_{epoch:03d}.pt", _weights_only(ckpt))
        write_json(run_dir / "history.json", history)
        epochs_bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{state['best_val_acc']:.3f}")
        if callback is not None:
            callback(record, history)
        if epoch - state["best_epoch"] >= patience:
            break
    return summarize(history, params, run_dir)


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
    }


class _FastBatches:
    """The training set as one uint8 tensor on the device; batches indexed and augmented there."""

    def __init__(self, data, params: dict, dev: torch.device):
        self.images = torch.from_numpy(data.images).to(dev)
        self.labels = torch.from_numpy(data.labels).to(dev)
        self.params, self.dev = params, dev
        self.batch = params["batch_size"]

    def __len__(self) -> int:
        # A last partial batch is dropped (its images come in other epochs' batches): one batch
        # shape means cuDNN autotunes once and batch-norm never sees a handful of images.
        full = len(self.labels) // self.batch
        return full if full >= 2 else -(-len(self.labels) // self.batch)

    @property
    def images_per_epoch(self) -> int:
        return min(len(self) * self.batch, len(self.labels))

    def epoch(self, epoch: int):
        # Seeded per epoch, so a resumed run sees the batches an uninterrupted one would.
        seed = self.params["seed"] * 100_003 + epoch
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        order = order.to(self.dev)
        gdev = torch.Generator(device=self.dev).manual_seed(seed)
        p = self.params
        for i in range(0, len(self) * self.batch, self.batch):
            idx = order[i : i + self.batch]
            x = aug.augment(aug.to_unit(self.images[idx]), generator=gdev, **p["augmentation"])
            yield model_input(x, p), self.labels[idx]


class _SeedDataset(torch.utils.data.Dataset):
    """The seed's per-image PIL pipeline: RGB, resize to 224, torchvision transforms."""

    def __init__(self, data, params: dict):
        from torchvision import transforms as T

        mean, std = aug.NORMALIZATION[params["normalization"]]
        self.data = data
        self.transform = T.Compose(
            [
                T.Resize((params["img_size"], params["img_size"])),
                T.RandomRotation(15),
                T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                T.ColorJitter(brightness=0.3, contrast=0.3),
                T.RandomPerspective(distortion_scale=0.2, p=0.5),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data.images[i]).convert("RGB")
        return self.transform(img), int(self.data.labels[i])


class _SeedBatches:
    """The seed's DataLoader: shuffled batches of `_SeedDataset`, moved to the device."""

    def __init__(self, data, params: dict, num_workers: int, dev: torch.device):
        self.dev = dev
        self.loader = torch.utils.data.DataLoader(
            _SeedDataset(data, params),
            batch_size=params["batch_size"],
            shuffle=True,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
            generator=torch.Generator().manual_seed(params["seed"]),
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def images_per_epoch(self) -> int:
        return len(self.loader.dataset)

    def epoch(self, epoch: int):
        for x, y in self.loader:
            yield x.to(self.dev, non_blocking=True), y.to(self.dev)


def _optimizer(model, params: dict, *, steps_per_epoch: int):
    if params["recipe"] == "seed":
        opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=5)
        return opt, sched
    opt = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=5e-4)
    total = params["epochs"] * steps_per_epoch
    if total < 10:  # too few steps to warm up and anneal (OneCycleLR divides by zero at 5)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=params["lr"], total_steps=total, pct_start=0.2
    )
    return opt, sched


def _train_epoch(model, loader, opt, sched, params, dev, epoch, averaged, progress):
    model.train()
    total_loss = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    batches = bar(
        loader.epoch(epoch), enabled=progress, total=len(loader), leave=False, desc=f"epoch {epoch}"
    )
    for x, y in batches:
        logits = _forward(model, x, dev)
        # float32 loss, as autocast itself would compute cross-entropy
        loss = F.cross_entropy(logits.float(), y, label_smoothing=params["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if params["recipe"] == "fast":
            sched.step()
        if averaged is not None:
            averaged.update_parameters(getattr(model, "_orig_mod", model))
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return float(total_loss) / seen, float(correct) / seen


def model_input(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Float N×1×H×W in [0, 1] -> the run's model input (size, channels, normalisation)."""
    return aug.to_model_input(
        x,
        size=params["img_size"],
        channels=params["channels"],
        normalization=params["normalization"],
    )


def eval_input(images: torch.Tensor, params: dict) -> torch.Tensor:
    """uint8 N×H×W (white on black) -> the model input evaluation and prediction use."""
    return model_input(aug.to_unit(images), params)


@torch.no_grad()
def predict_logits(
    model, images: np.ndarray, params: dict, dev: torch.device, batch_size: int = 1024
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 N×H×W images, through the recipe's eval transform."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = eval_input(torch.from_numpy(images[i : i + batch_size]).to(dev), params)
        out.append(_forward(model, x, dev).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(params["classes"]))


def evaluate_loss(model, data, params: dict, dev: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on a CharData split."""
    logits = predict_logits(model, data.images, params, dev)
    labels = torch.from_numpy(data.labels)
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    return loss, float((logits.argmax(1) == labels).float().mean()) if len(labels) else 0.0


def _checkpoint(judge, model, opt, sched, averaged, params, history, state, epoch) -> dict:
    """A plain dict of tensors and plain values: loadable with torch.load(weights_only=True)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": _state(judge),
        "train_model": _state(model),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "ema": averaged.state_dict() if averaged is not None else None,
        "epoch": epoch,
        "classes": params["classes"],
        "params": params,
        "history": list(history),
        "best_val_acc": state["best_val_acc"],
        "best_epoch": state["best_epoch"],
    }


def _weights_only(ckpt: dict) -> dict:
    """What inference needs: the model weights, classes, params and metrics (no optimizer)."""
    keep = ("format", "model", "epoch", "classes", "params", "best_val_acc", "best_epoch")
    return {k: ckpt[k] for k in keep} | {"val_acc": ckpt["history"][-1]["val_acc"]}


def _state(model) -> dict:
    return getattr(model, "_orig_mod", model).state_dict()


def model_from_checkpoint(ckpt: dict, device: str = "cpu"):
    """The ResNet-18 a checkpoint describes, with its weights, in eval mode on `device`."""
    p = ckpt["params"]
    net = resnet18(len(ckpt["classes"]), stem=p["stem"], in_channels=p["channels"])
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"checkpoint weights do not fit its own description ({len(ckpt['classes'])} classes, "
            f"{p['stem']} stem, {p['channels']} channel(s)): {first}; retrain or use another run"
        ) from None
    return net.to(device).eval()


def load_checkpoint(path) -> dict:
    """A checkpoint written by `fit`, loaded safely (weights_only: no code can run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; train first or check RUN_NAME")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refused, truncated file, not a torch file
        raise ValueError(
            f"{path}: not a safe charlib checkpoint ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a charlib checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return ckpt


# Knobs a resumed run must share with the run it continues.
_RESUME_KEYS = (
    "recipe",
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


def _restore(last: Path, params, model, opt, sched, averaged) -> dict:
    ckpt = load_checkpoint(last)
    old = ckpt["params"]
    diff = [k for k in _RESUME_KEYS if old.get(k) != params.get(k)]
    if diff:
        raise ValueError(
            f"{last.parent}: holds a run with other {', '.join(diff)}; choose another run "
            "name, or pass resume=False to start over"
        )
    model.load_state_dict(ckpt["train_model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    if averaged is not None:
        averaged.load_state_dict(ckpt["ema"])
    return {
        "epoch": ckpt["epoch"],
        "history": ckpt["history"],
        "best_val_acc": ckpt["best_val_acc"],
        "best_epoch": ckpt["best_epoch"],
    }
