"""How well the Predictor reads characters handed in as photos and scans, against clean files.

A fixed, class-balanced sample of the shared EMNIST test split is rendered by `charlib.data.photos`
as a user would hand it in - written with a pen on paper, photographed or scanned - once per
degradation (paper tone and lighting, shadow, noise, blur, JPEG, small and off-centre, blue
ballpoint, thin and thick pens, rotation, ruled and squared paper, a 3000×4000 photo) and with
them all together. Every picture goes through `Predictor.predict_many` as file bytes, the path
a user's file takes. Each row gives the accuracy, the clean files' accuracy on the very same
characters and the difference (target: within 3 points). Also the latency of one 12-megapixel
JPEG photo -> top-5 (target: 150 ms on 2 CPU cores). Writes benchmarks/results/robustness-cpu.json.

The model: --run (a name under runs/ or a folder). When that run does not exist, it is trained
first on the shared data's train split (--epochs, default 3; about 8 minutes on 2 CPU cores),
and reused by later runs of this benchmark; an existing run is never retrained or changed.

Usage: python benchmarks/robustness.py [--run bench-emnist] [--per-class 20] [--large-per-class 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from charlib.common.env import environment
from charlib.common.paths import resolve_run
from charlib.data import photos
from charlib.data.loading import load_dataset
from charlib.inference.infer import Predictor

ROOT = Path(__file__).resolve().parents[1]
ALL = ("paper", "shadow", "noise", "blur", "jpeg", "small", "blue_pen", "thin_pen", "rotation")
ALL += ("squared",)
TARGET_POINTS, TARGET_MS = 3.0, 150.0


def shared_data() -> Path:
    base = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    path = base / "emnist-byclass"
    if not (path / "train.zip").is_file():
        raise SystemExit(f"shared EMNIST data not found at {path}; set CHARLIB_SHARED_DATA")
    return path


def model_run(name: str, data: Path, epochs: int) -> Path:
    """The run to measure; trained on the shared data when it does not exist yet."""
    try:
        return resolve_run(name)
    except (FileNotFoundError, ValueError):
        pass
    from charlib.common.paths import runs_dir
    from charlib.training.train import fit

    run_dir = Path(name) if os.sep in name else runs_dir() / name
    print(f"training {run_dir} on {data} for {epochs} epoch(s) (first time only)")
    ds = load_dataset(data, progress=False)
    fit(ds.train, ds.validation, run_dir=run_dir, epochs=epochs, data_source=str(data))
    return run_dir


def png(glyph: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(glyph).save(out, format="PNG")
    return out.getvalue()


def accuracy(predictor: Predictor, files: list[bytes], labels: np.ndarray) -> dict:
    """Top-1 accuracy of the Predictor on image file bytes; blank and unsure counts."""
    guesses = []
    for start in range(0, len(files), 64):
        guesses += predictor.predict_many(files[start : start + 64], top_k=1)
    codes = np.array([g[0]["code"] if len(g) else -1 for g in guesses])
    return {
        "accuracy": float((codes == labels).mean()),
        "nothing_drawn": sum(g.blank for g in guesses),
        "unsure": sum(g.unsure for g in guesses),
        "correct": codes == labels,
    }


def condition(predictor, glyphs, labels, clean_correct, name, degradations, seed) -> dict:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    files = [photos.render(g, rng, degradations) for g in glyphs]
    rendered = time.perf_counter() - start
    got = accuracy(predictor, files, labels)
    clean = float(clean_correct.mean())
    row = {
        "condition": name,
        "degradations": list(degradations),
        "images": len(files),
        "accuracy": round(got["accuracy"], 4),
        "clean_accuracy": round(clean, 4),
        "points_vs_clean": round(100 * (got["accuracy"] - clean), 2),
        "nothing_drawn": got["nothing_drawn"],
        "unsure": got["unsure"],
        "render_s": round(rendered, 1),
    }
    row["meets_target"] = row["points_vs_clean"] >= -TARGET_POINTS
    print(
        f"{name:<34} {row['images']:>5}  {100 * row['accuracy']:6.2f}%  "
        f"clean {100 * clean:6.2f}%  {row['points_vs_clean']:+6.2f} pts  "
        f"blank {row['nothing_drawn']:>3}"
    )
    return row


def large_photo_latency(predictor: Predictor, glyph: np.ndarray, repeats: int) -> dict:
    """Milliseconds from a 3000×4000 JPEG file on disk to the top-5, one call at a time."""
    data = photos.render(glyph, np.random.default_rng(7), ("large", "paper", "noise"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        path.write_bytes(data)
        for _ in range(3):
            predictor.predict(path)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predictor.predict(path)
            times.append((time.perf_counter() - start) * 1000)
    t = np.array(times)
    size = Image.open(io.BytesIO(data)).size
    return {
        "image": f"{size[0]}×{size[1]} JPEG, {len(data) / 1e6:.1f} MB",
        "p50_ms": round(float(np.percentile(t, 50)), 1),
        "p95_ms": round(float(np.percentile(t, 95)), 1),
        "target_ms": TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="bench-emnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--large-per-class", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=None, help="conditions to run (names)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = shared_data()
    run = model_run(args.run, data, args.epochs)
    predictor = Predictor.from_run(run, device="cpu")
    test = load_dataset(data, progress=False).test
    sample = test.subset(per_class=args.per_class, seed=args.seed)
    glyphs, labels = sample.images, np.array([predictor.classes[i] for i in sample.labels])
    clean = accuracy(predictor, [png(g) for g in glyphs], labels)
    print(f"model {run}; {len(glyphs)} test characters; clean files {100 * clean['accuracy']:.2f}%")
    conditions = [("scan: black pen on white paper", ())]
    conditions += [(name, (name,)) for name in photos.DEGRADATIONS if name != "large"]
    conditions += [("all together (" + ", ".join(ALL) + ")", ALL)]
    rows = []
    for i, (name, degradations) in enumerate(conditions):
        if args.only and name.split(" ")[0].rstrip(":") not in args.only:
            continue
        rows.append(condition(predictor, glyphs, labels, clean["correct"], name, degradations, i))
    if not args.only or "large" in args.only:
        few = test.subset(per_class=args.large_per_class, seed=args.seed + 1)
        few_labels = np.array([predictor.classes[i] for i in few.labels])
        few_clean = accuracy(predictor, [png(g) for g in few.images], few_labels)["correct"]
        rows.append(
            condition(predictor, few.images, few_labels, few_clean, "large", ("large",), 99)
        )
    latency = large_photo_latency(predictor, glyphs[0], args.repeats)
    print(f"one {latency['image']} -> top-5: p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']}")
    env = environment()
    result = {
        "benchmark": "robustness",
        "device": env.get("cpu", "cpu"),
        "environment": env,
        "run": str(run),
        "per_class": args.per_class,
        "clean_accuracy": round(clean["accuracy"], 4),
        "target_points": TARGET_POINTS,
        "rows": rows,
        "large_photo_latency": latency,
        "all_meet_target": all(r["meets_target"] for r in rows),
    }
    path = ROOT / "benchmarks" / "results" / "robustness-cpu.json"
    if args.only and path.is_file():  # re-measured rows replace theirs in the last full run
        earlier = json.loads(path.read_text())
        if earlier.get("run") != result["run"] or earlier.get("per_class") != args.per_class:
            raise SystemExit(f"{path} holds another run or sample; rerun without --only")
        fresh = {r["condition"] for r in rows}
        result["rows"] = [r for r in earlier["rows"] if r["condition"] not in fresh] + rows
        result["all_meet_target"] = all(r["meets_target"] for r in result["rows"])
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {path.relative_to(ROOT)}\n")
    print(markdown(result))


def markdown(result: dict) -> str:
    """The README's table: one row per condition, then the large photo's latency."""
    lines = [
        "| handed in as | images | accuracy | clean files, same characters | difference |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        mark = "" if r["meets_target"] else " ✗"
        lines.append(
            f"| {r['condition']} | {r['images']:,} | {100 * r['accuracy']:.1f}% | "
            f"{100 * r['clean_accuracy']:.1f}% | {r['points_vs_clean']:+.1f} pts{mark} |"
        )
    lat = result["large_photo_latency"]
    lines.append(
        f"\nOne {lat['image']} file → top-5: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
