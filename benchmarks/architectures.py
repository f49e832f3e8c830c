"""Every architecture of `charlib.training.model.MODELS` trained the same way on the shared EMNIST
data: test accuracy on the whole test split, training images/s, parameters and inference cost.

Each model trains with the fast recipe within the same time budget (a CPU is slow: the default
is 120 s per model there; a GPU trains the recipe's epochs), so the table says what each
architecture does with equal time, the question a CPU user has.

Usage: python benchmarks/architectures.py [--time-budget 120] [--device auto] [--models a,b]
Writes benchmarks/results/architectures-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from charlib.common.env import device_name, environment
from charlib.data.loading import load_dataset
from charlib.training import checkpoint
from charlib.training.model import MODELS, predict_probs
from charlib.training.train import fit

ROOT = Path(__file__).resolve().parents[1]


def one(name: str, emnist, args, device: str, folder: Path) -> dict:
    budget = None if args.time_budget == "none" or device != "cpu" else float(args.time_budget)
    summary = fit(
        emnist.train,
        emnist.validation,
        run_dir=folder / name,
        device=device,
        model=name,
        time_budget=budget,
        data_source=args.emnist,
        progress=False,
    )
    ckpt = checkpoint.load(folder / name / "best.pt")
    net = checkpoint.model_from_checkpoint(ckpt, device)
    start = time.perf_counter()
    probs = predict_probs([net], emnist.test.images, ckpt["params"], torch.device(device))
    ms = 1000 * (time.perf_counter() - start) / len(emnist.test)
    return {
        "model": name,
        "test_accuracy": float((probs.argmax(1).numpy() == emnist.test.labels).mean()),
        "best_val_acc": summary["best_val_acc"],
        "epochs": summary["epochs_run"],
        "images_seen": summary["images_seen"],
        "train_images_per_s": summary["images_per_s"],
        "fit_seconds": round(summary["fit_seconds"], 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "ms_per_image": ms,
    }


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", default=str(default / "emnist-byclass"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-budget", default="120", help="seconds per model on a CPU")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    device = device_name(args.device)
    emnist = load_dataset(args.emnist, progress=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(one(name, emnist, args, device, Path(tmp)))
            r = rows[-1]
            print(f"{name}: {r['test_accuracy']:.2%} test, {r['train_images_per_s']:,.0f} img/s")
    base = next((r for r in rows if r["model"] == "resnet18"), rows[0])
    print(f"EMNIST test split, {len(emnist.test):,} images; budget {args.time_budget} s/model")
    print("| model | test acc. | Δ resnet18 | epochs | images seen | img/s | params | ms/image |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        delta = 100 * (r["test_accuracy"] - base["test_accuracy"])
        print(
            f"| {r['model']} | {r['test_accuracy']:.2%} | {delta:+.2f} | {r['epochs']} | "
            f"{r['images_seen']:,} | {r['train_images_per_s']:,.0f} | "
            f"{r['parameters'] / 1e6:.2f} M | {r['ms_per_image']:.3f} |"
        )
    kind = "gpu" if device != "cpu" else "cpu"
    out = ROOT / "benchmarks" / "results" / f"architectures-{kind}.json"
    if out.is_file():  # rows of models not rerun now are kept
        earlier = json.loads(out.read_text()).get("rows", [])
        rows = [r for r in earlier if r["model"] not in {x["model"] for x in rows}] + rows
        rows.sort(key=lambda r: MODELS.index(r["model"]) if r["model"] in MODELS else 99)
    result = {"environment": environment(), "time_budget": args.time_budget, "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
