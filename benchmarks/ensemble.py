"""Single models, their ensemble and test-time augmentation on the shared EMNIST data, in one run.

Trains the fast recipe with several seeds (at the CPU time budget on a CPU, the recipe's epochs
on a GPU), then scores on the whole shared EMNIST test split: each single model, the best one
with TTA, the ensemble of all, and the ensemble with TTA; with the inference cost of each
(milliseconds per image, batched, on this device) and the gain over the mean single model.

Usage: python benchmarks/ensemble.py [--seeds 3] [--device auto] [--time-budget auto]
                                     [--runs runs/bench-ensemble]
Writes benchmarks/results/ensemble-<device>.json. Runs already trained in --runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from charlib.common.env import device_name, environment
from charlib.data.loading import load_dataset
from charlib.training import checkpoint
from charlib.training.model import predict_probs
from charlib.training.train import fit

ROOT = Path(__file__).resolve().parents[1]


def train_members(emnist, args, device: str) -> list[Path]:
    runs = []
    for seed in range(args.seeds):
        run = Path(args.runs) / f"seed{seed}"
        if not (run / "best.pt").is_file():
            budget = (
                args.time_budget if args.time_budget in ("auto", None) else float(args.time_budget)
            )
            summary = fit(
                emnist.train,
                emnist.validation,
                run_dir=run,
                device=device,
                seed=seed,
                time_budget=budget,
                overwrite=True,
                resume=False,
                data_source=args.emnist,
                progress=False,
            )
            print(f"seed {seed}: {summary['epochs_run']} epochs, {summary['best_val_acc']:.2%} val")
        runs.append(run)
    return runs


def score(models, test, params, dev, *, tta: bool) -> tuple[float, float]:
    """Accuracy on the test split and milliseconds per image."""
    start = time.perf_counter()
    probs = predict_probs(models, test.images, params, dev, tta=tta)
    seconds = time.perf_counter() - start
    accuracy = float((probs.argmax(1).numpy() == test.labels).mean())
    return accuracy, 1000 * seconds / len(test)


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", default=str(default / "emnist-byclass"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-budget", default="auto", help="seconds per model, auto or none")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench-ensemble"))
    args = parser.parse_args()
    args.time_budget = None if args.time_budget == "none" else args.time_budget
    device = device_name(args.device)
    dev = torch.device(device)
    emnist = load_dataset(args.emnist, progress=False)
    runs = train_members(emnist, args, device)
    ckpts = [checkpoint.load(r / "best.pt") for r in runs]
    models = [checkpoint.model_from_checkpoint(c, device) for c in ckpts]
    params = ckpts[0]["params"]
    rows = []
    singles = [score([m], emnist.test, params, dev, tta=False) for m in models]
    for seed, (acc, ms) in enumerate(singles):
        rows.append({"predictor": f"single, seed {seed}", "accuracy": acc, "ms_per_image": ms})
    best = int(np.argmax([a for a, _ in singles]))
    for name, members, tta in (
        (f"single seed {best} + TTA", [models[best]], True),
        (f"ensemble of {len(models)}", models, False),
        (f"ensemble of {len(models)} + TTA", models, True),
    ):
        acc, ms = score(members, emnist.test, params, dev, tta=tta)
        rows.append({"predictor": name, "accuracy": acc, "ms_per_image": ms})
    mean_single = float(np.mean([a for a, _ in singles]))
    single_ms = float(np.mean([ms for _, ms in singles]))
    print(f"EMNIST test split: {len(emnist.test):,} images, {len(params['classes'])} classes")
    print("| predictor | test accuracy | gain over mean single | ms/image | cost vs single |")
    print("|---|---|---|---|---|")
    for r in rows:
        r["gain_points"] = 100 * (r["accuracy"] - mean_single)
        r["cost_ratio"] = r["ms_per_image"] / single_ms
        print(
            f"| {r['predictor']} | {r['accuracy']:.2%} | {r['gain_points']:+.2f} | "
            f"{r['ms_per_image']:.3f} | {r['cost_ratio']:.1f}× |"
        )
    train_facts = [json.loads((r / "params.json").read_text()).get("plan") for r in runs]
    out = ROOT / "benchmarks" / "results" / f"ensemble-{'gpu' if device != 'cpu' else 'cpu'}.json"
    result = {
        "environment": environment(),
        "test_images": len(emnist.test),
        "members": [str(r) for r in runs],
        "plans": train_facts,
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
