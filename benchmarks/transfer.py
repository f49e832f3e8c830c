"""Train on the built-in synthetic data only; test on real handwriting (shared EMNIST test split).

The synthetic set has 95 classes (ASCII 33-126 and 999), EMNIST 62 (digits and letters). Two
scores: 'restricted' takes the best of the 62 EMNIST classes (the label set is known, as in any
EMNIST evaluation); 'open' takes the best of all 95 (a guessed '|' for an 'l' counts as wrong).

A variant of the built-in data (`--hand`: the share of samples drawn from Hershey pen strokes,
`--data-seed`) is generated into a temporary folder; by default the preset as `make run` makes it.
Training follows the CPU time budget of `make run` (`--time-budget auto`), or `--epochs N`.

Usage: python benchmarks/transfer.py [--epochs N | --time-budget S] [--hand 0.6] [--tag NAME]
Writes benchmarks/results/transfer-<device>[-<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from charlib.common.env import device_name, environment
from charlib.common.files import read_json
from charlib.common.paths import resolve_run
from charlib.data import handwriting, synth
from charlib.data.loading import load_dataset
from charlib.training.checkpoint import load as load_checkpoint
from charlib.training.checkpoint import model_from_checkpoint
from charlib.training.model import predict_logits
from charlib.training.train import fit, summarize

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", default=str(default / "emnist-byclass"))
    parser.add_argument("--preset", default="synth", help="built-in data preset to train on")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--stem", default=None)
    parser.add_argument("--keep", default=None, help="run folder to keep (default: a temp one)")
    parser.add_argument("--augmentation", default="{}", help="JSON, e.g. '{\"elastic\": 0.05}'")
    parser.add_argument("--time-budget", default="auto", help="seconds, 'auto' (CPU) or 'none'")
    parser.add_argument("--hand", type=float, default=None, help="pen-stroke share of the data")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--digits", type=float, default=None, help="digit weight in training")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--run", default=None, help="score this trained run instead of training")
    args = parser.parse_args()
    device = device_name(args.device)
    budget = None if args.time_budget == "none" or args.epochs else args.time_budget
    budget = float(budget) if budget not in (None, "auto") else budget
    emnist = load_dataset(args.emnist, progress=False)
    if args.run:  # a run already trained on the built-in data, e.g. `make run`'s runs/default
        run_dir = resolve_run(args.run)
        ckpt = load_checkpoint(run_dir / "best.pt")
        summary = summarize(read_json(run_dir / "history.json", []), ckpt["params"], run_dir)
        made = {  # as the run's data was made: the defaults, unless said otherwise
            "hand": synth.HAND if args.hand is None else args.hand,
            "digits": synth.DIGITS if args.digits is None else args.digits,
            "source": ckpt["params"]["data"],
        }
    else:
        ckpt, summary, made = train(args, device, budget)
    report(args, device, ckpt, summary, emnist, made)


def train(args, device: str, budget):
    """Generate the data variant asked for (or take the preset) and train on it."""
    with tempfile.TemporaryDirectory() as tmp:
        source, hand = args.preset, synth.HAND
        digits = synth.DIGITS if args.digits is None else args.digits
        if args.hand is not None or args.data_seed or args.digits is not None:
            hand = synth.HAND if args.hand is None else args.hand
            source = Path(tmp) / "data"
            counts = synth.PRESETS[args.preset]
            synth.generate(
                source, counts=counts, seed=args.data_seed, hand=hand, digits=digits,
                progress=False,
            )  # fmt: skip
        data = load_dataset(source, progress=False)
        run_dir = Path(args.keep or Path(tmp) / "run")
        summary = fit(
            data.train,
            data.validation,
            run_dir=run_dir,
            device=device,
            epochs=args.epochs,
            stem=args.stem,
            resume=False,
            seed=args.seed,
            time_budget=budget,
            data_source=str(source),
            augmentation=json.loads(args.augmentation),
        )
        ckpt = load_checkpoint(run_dir / "best.pt")
    return ckpt, summary, {"hand": hand, "digits": digits, "source": str(source)}


def report(args, device, ckpt, summary, emnist, made: dict) -> None:
    """Score the run on the EMNIST test split; print and write the result file."""
    net = model_from_checkpoint(ckpt, device)
    logits = predict_logits(net, emnist.test.images, ckpt["params"], torch.device(device))
    classes = np.asarray(ckpt["classes"])
    truth = emnist.test.codes
    open_pred = classes[logits.argmax(1).numpy()]
    keep = np.isin(classes, emnist.classes)
    restricted_pred = classes[keep][logits[:, torch.from_numpy(keep)].argmax(1).numpy()]
    digits = (truth >= 48) & (truth <= 57)
    fold = np.vectorize(lambda c: ord(chr(c).lower()) if 65 <= c <= 90 else c)
    env = environment()
    result = {
        "benchmark": "transfer",
        "device": env.get("gpu", f"CPU ({os.cpu_count()} cores, {platform.machine()})"),
        "trained_on": f"{made['source']}: {ckpt['params']['train_images']:,} images, "
        f"{len(classes)} classes",
        "run": args.run or args.keep,
        "data": {
            **made,
            "data_seed": args.data_seed,
            "synth_version": synth.VERSION,
            "alternates": sorted(handwriting.ALTERNATES),
            "alternate": handwriting.ALTERNATE,
        },  # fmt: skip
        "seed": args.seed,
        "time_budget": ckpt["params"].get("time_budget"),
        "tested_on": f"{args.emnist} test: {len(truth):,} images, {len(emnist.classes)} classes",
        "params": {
            k: ckpt["params"][k]
            for k in ("recipe", "stem", "epochs", "batch_size", "lr", "augmentation")
        },
        "synthetic_val_acc": round(summary["best_val_acc"], 4),
        "train_seconds": summary["train_seconds"],
        "emnist_test_acc_restricted": round(float((restricted_pred == truth).mean()), 4),
        "emnist_test_acc_open": round(float((open_pred == truth).mean()), 4),
        "emnist_digits_acc_restricted": round(float((restricted_pred == truth)[digits].mean()), 4),
        "emnist_test_acc_case_insensitive": round(
            float((fold(restricted_pred) == fold(truth)).mean()), 4
        ),
    }
    tag = "gpu" if device.startswith("cuda") else "cpu"
    path = (
        ROOT / "benchmarks" / "results" / f"transfer-{tag}{'-' + args.tag if args.tag else ''}.json"
    )
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "params"}, indent=2))
    print(f"-> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
