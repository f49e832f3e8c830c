"""Does the "photo" augmentation pay? The cleaner alone against the cleaner plus training on what
it leaves, measured on real photos and scans (look and held-out parts) and on the EMNIST test.

Two fine-tunes of the same base model (the reference model by default) on the same seeded,
class-balanced sample of the shared EMNIST train split, for the same time budget and epochs:
- `<prefix>-off`: augmentation as the base trained (photo 0: the cleaner alone, at use);
- `<prefix>-on`: the same, with `photo` = --share of the sample handed through photos and the
  cleaner before training (`photos.through_cleaner`).
Fine-tuning both, rather than comparing against the base, keeps "more training" out of the
difference. An existing run of that name is reused, never retrained. Then the base and both runs
are scored on every source under data/external/photos/ (both parts, through
benchmarks/real_photos.py's own scoring) and on the whole EMNIST test split (`real.score`).

Usage: python benchmarks/photo_augmentation.py [--base reference] [--share 0.3]
           [--time-budget 420] [--epochs 6] [--per-class 300] [--prefix photo-aug]
Writes benchmarks/results/photo_augmentation-cpu.json and each run's misses galleries.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from charlib.common import paths
from charlib.data.loading import load_dataset
from charlib.inference import real
from charlib.training import checkpoint
from charlib.training.train import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_photos  # noqa: E402
from scoring import machine, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LR_SHARE = 0.05  # of the base's peak learning rate: a fine-tune, not a new training


def tune(base: Path, name: str, data, photo: float, args) -> Path:
    """Fine-tune `base` into runs/<name> (reused when it exists); its run folder."""
    target = paths.runs_dir() / name
    if (target / "best.pt").is_file():
        print(f"{name}: exists, reused")
        return target
    params = checkpoint.load(base / "best.pt")["params"]
    fit(
        data.train,
        data.validation,
        run_dir=target,
        recipe=params["recipe"],
        device=args.device,
        model=params.get("model", "resnet18"),
        epochs=args.epochs,
        lr=params["lr"] * LR_SHARE,
        img_size=params["img_size"],
        stem=params["stem"],
        augmentation={**params["augmentation"], "photo": photo},
        time_budget=args.time_budget,
        resume=False,
        data_source=args.emnist,
        init_from=base / "best.pt",
    )
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="reference", help="run to fine-tune (default: reference)")
    parser.add_argument("--share", type=float, default=0.3, help="photo share of the sample")
    parser.add_argument("--time-budget", type=float, default=420.0, help="seconds per fine-tune")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=300, help="EMNIST train images per class")
    parser.add_argument("--prefix", default="photo-aug")
    parser.add_argument("--emnist", default=str(paths.real_handwriting() or ""))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if not args.emnist:
        print("photo_augmentation: no EMNIST here; set CHARLIB_SHARED_DATA", file=sys.stderr)
        return 2
    data = load_dataset(args.emnist, progress=False)
    data = replace(data, train=data.train.subset(args.per_class))  # the same sample for both
    base = paths.resolve_run(args.base)
    runs = {
        "base": base,
        "off": tune(base, f"{args.prefix}-off", data, 0.0, args),
        "on": tune(base, f"{args.prefix}-on", data, args.share, args),
    }
    folders = sorted(p for p in (paths.data_dir() / "external" / "photos").glob("*") if p.is_dir())
    result = {"benchmark": "photo_augmentation", "machine": machine(), "share": args.share}
    result |= {"time_budget": args.time_budget, "epochs": args.epochs, "per_class": args.per_class}
    result["runs"] = {k: str(v) for k, v in runs.items()}
    result["emnist_test"] = {k: real.score(v, args.emnist)["accuracy"] for k, v in runs.items()}
    for part in ("look", "held-out"):
        record = real_photos.benchmark(
            folders, list(runs.values()), part=part, out=Path(args.out), tag=f"{args.prefix}-{part}"
        )
        result[part] = {
            k: {src: round(s["top1"], 4) for src, s in entry["per_source"].items()}
            | {
                "overall": round(entry["overall"]["top1"], 4),
                "overall_lenient": round(entry["overall"]["top1_lenient"], 4),
            }
            for k, entry in zip(runs, record["runs"], strict=True)
        }
    lines = [f"{'':6} {'EMNIST test':>12} " + " ".join(f"{p:>22}" for p in ("look", "held-out"))]
    for k in runs:
        row = [f"{result['emnist_test'][k]:12.2%}"]
        row += [
            f"{result[p][k]['overall']:11.1%} / {result[p][k]['overall_lenient']:.1%}"
            for p in ("look", "held-out")
        ]
        lines.append(f"{k:6} " + " ".join(row))
    write_result(Path(args.out) / "photo_augmentation-cpu.json", result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
