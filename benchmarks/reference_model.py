"""Build the shipped reference model: train on the shared EMNIST ByClass train split (or take a
run trained so), store its weights as fp16 in a safe checkpoint, score it on the whole shared test
split, time it on this CPU, and write charlib/common/reference/ with its card.

Usage:
  python benchmarks/reference_model.py --train --time-budget 3600 --epochs 24   # train, then ship
  python benchmarks/reference_model.py --run emnist-ref                         # ship a run

Writes charlib/common/reference/{best.pt, params.json, history.json, card.json, CARD.md} and
benchmarks/results/reference-cpu.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from charlib.common import paths
from charlib.common.env import cpu_name, environment
from charlib.common.files import file_digest, read_json, write_json
from charlib.data.loading import load_dataset
from charlib.inference import real
from charlib.inference.infer import Predictor
from charlib.training import checkpoint
from charlib.training.train import fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "charlib" / "common" / "reference"
RUN_NAME = "emnist-ref"


def main() -> None:
    shared = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", default=str(shared / "emnist-byclass"))
    parser.add_argument("--run", default=RUN_NAME, help="the trained run to ship")
    parser.add_argument("--train", action="store_true", help="train --run first")
    parser.add_argument("--time-budget", type=float, default=3600.0, help="seconds (--train)")
    parser.add_argument("--epochs", type=int, default=24, help="at most (--train)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    emnist = load_dataset(args.emnist, progress=False)
    run_dir = paths.resolve_run(args.run, trained=False)
    if args.train:
        summary = fit(
            emnist.train,
            emnist.validation,
            run_dir=run_dir,
            device=args.device,
            epochs=args.epochs,
            time_budget=args.time_budget,
            data_source=args.emnist,
        )
        print(f"trained {run_dir}: {summary['best_val_acc']:.1%} validation")
    card = ship(run_dir, args.emnist, emnist.test, Path(args.out))
    print(f"{Path(args.out) / 'best.pt'}: {card['size_mb']:.1f} MB")
    print(f"EMNIST test {card['accuracy']:.2%} (top-5 {card['top5_accuracy']:.2%}), ")
    print(f"{card['latency_ms']:.1f} ms per character on {card['latency_machine']}")


def half(ckpt: dict) -> dict:
    """The inference part of a checkpoint with its floating-point weights in fp16."""
    weights = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    keep = {k: ckpt[k] for k in checkpoint.INFERENCE_KEYS if k in ckpt}
    return keep | {"model": weights, "val_acc": ckpt.get("val_acc", ckpt.get("best_val_acc"))}


def latency_ms(folder: Path, test, n: int = 200) -> float:
    """Median milliseconds from one 28×28 image (PNG-sized uint8 array) to its top-5."""
    predictor = Predictor.from_run(folder, device="cpu")
    images = test.images[:n]
    predictor.predict(images[0])  # warm-up
    times = []
    for image in images:
        start = time.perf_counter()
        predictor.predict(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ship(run_dir: Path, source, test, out: Path) -> dict:
    """Write the fp16 checkpoint and its card into `out`; returns the card. Both precisions are
    scored by `real.score` (every class open) on `source`'s whole test split (`test`)."""
    ckpt = half(checkpoint.load(run_dir / "best.pt"))
    history = read_json(run_dir / "history.json", [])
    ckpt["params"] = {k: v for k, v in ckpt["params"].items() if k != "environment"}
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.save(out / "best.pt", ckpt)
    write_json(out / "params.json", read_json(run_dir / "params.json", ckpt["params"]))
    write_json(out / "history.json", history)
    shipped = real.score(out, source, device="cpu")
    fp32 = real.score(run_dir, source, device="cpu")
    p = ckpt["params"]
    card = {
        "model": "ResNet-18" if p.get("model", "resnet18") == "resnet18" else p["model"],
        "architecture": f"{p.get('model', 'resnet18')}, {p['stem']} stem, {p['img_size']} px, "
        f"{p['channels']} channel",
        "classes": len(ckpt["classes"]),
        "data": "EMNIST ByClass, the shared split (train 67,737, validation 14,512, test 14,525 "
        "images of real handwriting from NIST SD19, 62 classes)",
        "trained_on": p.get("data"),
        "recipe": {k: p.get(k) for k in ("recipe", "batch_size", "lr", "label_smoothing")}
        | {"epochs": len(history), "plan": p.get("plan"), "augmentation": p.get("augmentation")},
        "training_seconds": round(sum(r["seconds"] for r in history)),
        "training_machine": (read_json(run_dir / "params.json", {}).get("environment") or {}),
        "best_val_acc": ckpt.get("best_val_acc"),
        "measured_on": "EMNIST test split",
        "test_images": len(test),
        "accuracy": round(shipped["accuracy"], 4),
        "top5_accuracy": round(shipped["top5_accuracy"], 4),
        "precision": "fp16 weights (loaded into fp32)",
        "fp32_accuracy": round(fp32["accuracy"], 4),
        "size_mb": round((out / "best.pt").stat().st_size / 1e6, 2),
        "sha256": file_digest(out / "best.pt"),
        "latency_ms": round(latency_ms(out, test), 2),
        "latency_machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "rebuild": "python benchmarks/reference_model.py --train --time-budget 3600 --epochs 24",
    }
    write_json(out / "card.json", card)
    (out / "CARD.md").write_text(card_markdown(card))
    for shipped in out.iterdir():
        shipped.chmod(0o644)  # package data: readable by everyone once installed
    write_json(ROOT / "benchmarks" / "results" / "reference-cpu.json", card | environment())
    return card


def card_markdown(card: dict) -> str:
    """The model card as Markdown, from card.json's facts."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in card.items() if not isinstance(v, dict))
    recipe = "\n".join(f"- {k}: {v}" for k, v in card["recipe"].items())
    machine = card["training_machine"]
    where = f"{machine.get('cpu') or machine.get('gpu') or '?'} ({machine.get('cpu cores')} cores)"
    return f"""# charlib reference model

{card["model"]} trained by charlib's own `fit` on real handwriting: {card["data"]}.
It is what the drawing pad, `charlib serve` and `charlib predict` use until you train a run of
your own (or when you pass `--run reference`).

**{card["accuracy"]:.2%} top-1, {card["top5_accuracy"]:.2%} top-5 on the whole
{card["measured_on"]}** ({card["test_images"]:,} images, all {card["classes"]} classes open).
About 88% is the best published accuracy on ByClass: c/C, o/O/0, s/S, l/1/I and others are
ambiguous by nature.

Caution: the shared split was cut from the official EMNIST ByClass *test* partition, so do not
score this model on the official test partition (`DATA=emnist`'s test split): it saw part of it.

| fact | value |
| --- | --- |
{rows}

Recipe:
{recipe}

Trained on: {where}.

Rebuild: `{card["rebuild"]}` (needs the shared EMNIST folder; set `CHARLIB_SHARED_DATA`).
The weights are fp16 in a plain checkpoint (`torch.load(..., weights_only=True)`: no code).
"""


if __name__ == "__main__":
    main()
