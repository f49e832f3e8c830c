"""First (decoding) load vs cached load of the shared EMNIST data; the target is >= 10x.

Usage: python benchmarks/load_speed.py [--data PATH] [--repeat N]
Writes benchmarks/results/load_speed-<host>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default / "emnist-byclass")
    parser.add_argument("--repeat", type=int, default=5, help="cached loads to time")
    args = parser.parse_args()
    if not (args.data / "train.zip").is_file():
        raise SystemExit(f"no dataset at {args.data}; pass --data or set CHARLIB_SHARED_DATA")

    with tempfile.TemporaryDirectory() as cache:
        os.environ["CHARLIB_CACHE_DIR"] = cache  # a cold cache, whatever ran before
        from charlib.data.loading import load_dataset

        start = time.perf_counter()
        ds = load_dataset(args.data, progress=False)
        first = time.perf_counter() - start
        assert not ds.report.from_cache
        cached = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            again = load_dataset(args.data, progress=False)
            cached.append(time.perf_counter() - start)
            assert again.report.from_cache
    images = sum(ds.report.counts.values())
    result = {
        "benchmark": "load_speed",
        "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})",
        "device": "cpu",
        "dataset": str(args.data),
        "images": images,
        "first_load_s": round(first, 3),
        "cached_load_s_median": round(statistics.median(cached), 4),
        "speedup": round(first / statistics.median(cached), 1),
        "first_load_images_per_s": round(images / first),
    }
    out = ROOT / "benchmarks" / "results" / "load_speed-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'images':>10} {'first load':>11} {'cached load':>12} {'speedup':>8}")
    print(
        f"{images:>10,} {first:>10.2f}s {result['cached_load_s_median']:>11.3f}s "
        f"{result['speedup']:>7.0f}x   (target >= 10x)"
    )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
