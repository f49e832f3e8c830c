"""Teach it your hand: how much a few saved drawings of an unseen hand help, and what it costs.

The unseen hand is a Hershey script font (`handwriting.SCRIPT_FONTS` are never in the built-in
data), drawn with its own jitter. For each of the 62 letters and digits, `--shots` drawings are
saved through `mine.save` exactly as the pad saves them (strokes JSON + the model's view), the run
is fine-tuned on them (`finetune`, with replay), and the run before and after is scored on
`--fresh` other drawings per character of that hand and on the run's own test split.

Usage: python benchmarks/teach.py --run RUN [--font scripts] [--shots 5] [--fresh 20]
Writes benchmarks/results/teach-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from charlib.common.env import device_name, environment
from charlib.common.paths import resolve_run
from charlib.data import handwriting, mine
from charlib.data.loading import load_dataset
from charlib.inference.infer import Predictor
from charlib.training import finetune

ROOT = Path(__file__).resolve().parents[1]
CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def drawings(font: str, per_char: int, seed: int) -> tuple[list, np.ndarray]:
    """`per_char` pad drawings of each character in one Hershey font, and their codes."""
    rng = np.random.default_rng(seed)
    out, codes = [], []
    for char in CHARS:
        for _ in range(per_char):
            strokes = handwriting.drawing(ord(char), rng, (font,))
            out.append(handwriting.as_strokes(strokes))
            codes.append(ord(char))
    return out, np.asarray(codes)


def scores(run_dir: Path, fresh: list, fresh_codes: np.ndarray, test) -> dict:
    """Accuracy on the fresh drawings of the unseen hand and on the run's test split."""
    p = Predictor.from_run(run_dir, device="cpu")
    guesses = np.asarray([pr[0]["code"] for pr in p.predict_many(fresh, top_k=1)])
    probs = np.concatenate(
        [p.probabilities(test.images[i : i + 1024]) for i in range(0, len(test), 1024)]
    )
    test_pred = np.asarray(p.classes)[probs.argmax(1)]
    return {
        "unseen_hand_acc": round(float((guesses == fresh_codes).mean()), 4),
        "test_acc": round(float((test_pred == test.codes).mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run trained on the built-in data")
    parser.add_argument("--font", default="scripts", choices=handwriting.SCRIPT_FONTS)
    parser.add_argument("--shots", type=int, default=5, help="saved drawings per character")
    parser.add_argument("--fresh", type=int, default=20, help="test drawings per character")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", type=int, default=finetune.REPLAY, help="per class")
    parser.add_argument("--repeat", type=int, default=finetune.REPEAT, help="per example")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    args = parser.parse_args()
    run_dir = resolve_run(args.run)
    params = json.loads((run_dir / "params.json").read_text())
    test = load_dataset(params["data"], progress=False).test
    shots, _ = drawings(args.font, args.shots, seed=1000 + args.seed)
    fresh, fresh_codes = drawings(args.font, args.fresh, seed=2000 + args.seed)
    before = scores(run_dir, fresh, fresh_codes, test)
    with tempfile.TemporaryDirectory() as tmp:
        p = Predictor.from_run(run_dir, device="cpu")
        for drawing, char in zip(shots, np.repeat(list(CHARS), args.shots), strict=True):
            mine.save(drawing, char, image=p.prepare(drawing), dest=Path(tmp) / "mine")
        start = time.perf_counter()
        summary = finetune.finetune(
            run_dir, Path(tmp) / "mine", name=str(Path(tmp) / "tuned"), device="cpu",
            seed=args.seed, replay=args.replay, repeat=args.repeat, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        after = scores(summary["run_dir"], fresh, fresh_codes, test)
    env = environment()
    result = {
        "benchmark": "teach",
        "device": env.get("gpu", f"CPU ({os.cpu_count()} cores, {platform.machine()})"),
        "cpu": env.get("cpu") or platform.processor(),
        "run": str(run_dir),
        "hand": f"Hershey '{args.font}' (held out of the built-in data), seed {args.seed}",
        "saved_per_char": args.shots,
        "fresh_per_char": args.fresh,
        "characters": len(CHARS),
        "original_test": f"{params['data']} test: {len(test):,} images",
        "finetune": {
            "epochs": finetune.EPOCHS,
            "replay_per_class": args.replay,
            "repeat": args.repeat,
            "lr_share": finetune.LR_SHARE,
            "seconds": round(seconds, 1),
        },  # fmt: skip
        "before": before,
        "after": after,
        "unseen_hand_gain_points": round(
            100 * (after["unseen_hand_acc"] - before["unseen_hand_acc"]), 2
        ),
        "test_drop_points": round(100 * (before["test_acc"] - after["test_acc"]), 2),
    }
    tag = "gpu" if device_name("auto").startswith("cuda") else "cpu"
    path = ROOT / "benchmarks" / "results" / f"teach-{tag}{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"-> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
