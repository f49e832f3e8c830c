"""Do stroke-width and elastic augmentation help the fast recipe on real handwriting?

Trains the fast recipe (the device's default: on a CPU the ImageNet stem at 28 px) four times on
the shared EMNIST ByClass data, same seed, same epochs, same class-balanced training subset:
with today's augmentation (`augment.DEFAULTS`), with stroke-width changes, with elastic
distortion, and with both (the magnitudes notebook 02 used to preview). Each run is tested on
the whole validation and test splits.

Usage: python benchmarks/augmentation.py [--per-class 300] [--epochs 3] [--device auto]
       [--seed N] [--variants defaults 'elastic 0.06' ...]
Writes benchmarks/results/augmentation-<device>[-seed<N>].json; the first variant is the base
the others' gains are measured against.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from charlib.common.env import cpu_name, device_name, environment
from charlib.data.loading import load_dataset
from charlib.training import checkpoint
from charlib.training.model import evaluate_loss
from charlib.training.train import fit

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "defaults": {},
    "stroke 0.5": {"stroke": 0.5},
    "elastic 0.06": {"elastic": 0.06},
    "stroke 0.5 + elastic 0.06": {"stroke": 0.5, "elastic": 0.06},
}


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", default=str(default / "emnist-byclass"))
    parser.add_argument("--per-class", type=int, default=300, help="training images per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME"
    )
    args = parser.parse_args()
    device = device_name(args.device)
    ds = load_dataset(args.emnist, progress=False)
    train = ds.train.subset(args.per_class, args.seed)
    rows = []
    for name in args.variants:
        magnitudes = VARIANTS[name]
        with tempfile.TemporaryDirectory() as tmp:
            summary = fit(
                train,
                ds.validation,
                run_dir=tmp,
                device=device,
                seed=args.seed,
                epochs=args.epochs,
                augmentation=magnitudes,
                resume=False,
                progress=False,
            )
            ckpt = checkpoint.load(Path(tmp) / "best.pt")
        net = checkpoint.model_from_checkpoint(ckpt, device)
        _, test_acc = evaluate_loss(net, ds.test, ckpt["params"], torch.device(device))
        row = {
            "variant": name,
            "augmentation": magnitudes,
            "val_acc": round(summary["best_val_acc"], 4),
            "test_acc": round(test_acc, 4),
            "train_seconds": summary["train_seconds"],
            "images_per_s": summary["images_per_s"],
        }
        rows.append(row)
        print(
            f"{name:<28} validation {row['val_acc']:.2%}  test {row['test_acc']:.2%}  "
            f"({row['train_seconds']:.0f} s, {row['images_per_s']:.0f} images/s)",
            flush=True,
        )
    base = rows[0]
    for row in rows[1:]:
        row["val_gain_points"] = round(100 * (row["val_acc"] - base["val_acc"]), 2)
        row["test_gain_points"] = round(100 * (row["test_acc"] - base["test_acc"]), 2)
    tag = "cpu" if device == "cpu" else f"gpu-{torch.cuda.get_device_name(0).replace(' ', '_')}"
    result = {
        "benchmark": "augmentation",
        "device": device,
        "cpu": cpu_name(),
        "data": f"{args.emnist}: {len(train):,} training images ({args.per_class} per class), "
        f"validation {len(ds.validation):,}, test {len(ds.test):,}",
        "epochs": args.epochs,
        "seed": args.seed,
        "params": {k: ckpt["params"][k] for k in ("recipe", "stem", "batch_size", "lr")},
        "variants": rows,
        "environment": environment(),
    }
    seed = f"-seed{args.seed}" if args.seed else ""
    out = ROOT / "benchmarks" / "results" / f"augmentation-{tag}{seed}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
