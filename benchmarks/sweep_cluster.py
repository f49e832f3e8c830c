"""One smoke sweep run twice, on this machine (combinations in turn) and on a local Dask cluster
(`cluster="local:2"`: two worker processes, combinations side by side): the wall time of each,
their ratio, and whether every combination's metrics are the same.

The grid is MODEL=plain_cnn,mobilenet_v3_small x SEED=1,2 with --smoke (4 combinations); each
sweep goes into its own temporary runs and reports folders (never the user's runs/ or
reports/); the built-in data is made once before either is timed.

Usage: python benchmarks/sweep_cluster.py [--cluster local:2]
Writes benchmarks/results/sweep_cluster-cpu.json (-gpu-<name> on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from charlib.common.env import environment
from charlib.data import loading
from charlib.data.sources import measured_on
from charlib.workflow import sweep

ROOT = Path(__file__).resolve().parents[1]
GRID = {"MODEL": ["plain_cnn", "mobilenet_v3_small"], "SEED": [1, 2]}
SAME = ("accuracy", "top_k_accuracy", "f1_macro", "n_images", "checkpoint_epoch")


def timed_sweep(folder: Path, cluster: str | None) -> dict:
    """The sweep into folder/runs and folder/reports; its wall time, notebook 06's share of it,
    and each combination's row."""
    os.environ["CHARLIB_RUNS_DIR"] = str(folder / "runs")
    compare, spent = sweep.compare, []

    def timed_compare(*args, **kw):
        start = time.perf_counter()
        try:
            return compare(*args, **kw)
        finally:
            spent.append(time.perf_counter() - start)

    sweep.compare = timed_compare
    start = time.perf_counter()
    try:
        rows = sweep.run_sweep(
            "bench", GRID, smoke=True, reports=folder / "reports", cluster=cluster
        )
    finally:
        sweep.compare = compare
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "compare_seconds": round(sum(spent), 1), "rows": rows}


def metrics(folder: Path, combination: str) -> tuple[dict, dict]:
    run = folder / "runs" / "bench" / combination
    read = lambda name: json.loads((run / name).read_text())  # noqa: E731
    return read("metrics.json"), read("classification_report.json")


def compared(here: Path, there: Path) -> list[dict]:
    """Per combination: whether accuracy, top-5, macro F1 and every class's figures are the same
    (exactly), whether metrics.json is identical altogether, and the ECE difference."""
    out = []
    for combination in map(sweep.combination_name, sweep.combinations(GRID)):
        (a, ca), (b, cb) = metrics(here, combination), metrics(there, combination)
        out.append(
            {
                "combination": combination,
                "accuracy": a["accuracy"],
                "measured_on": measured_on(a),
                "same_metrics": all(a[k] == b[k] for k in SAME) and ca == cb,
                "identical_metrics_json": a == b,
                "ece_difference": abs(a["ece"] - b["ece"]),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="local:2")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    loading.check_source("synth-small")  # made once, before either sweep is timed
    env = environment()
    with tempfile.TemporaryDirectory(prefix="charlib-bench-") as tmp:
        here, there = Path(tmp) / "here", Path(tmp) / "cluster"
        local = timed_sweep(here, None)
        on_cluster = timed_sweep(there, args.cluster)
        rows = compared(here, there)
    failed = [r["run"] for r in local["rows"] + on_cluster["rows"] if r["status"] != "ok"]
    result = {
        "environment": env,
        "machine": f"{env['cpu']} ({env['cpu cores']} cores)"
        + (f", {env['gpu']}" if "gpu" in env else ""),
        "grid": GRID,
        "smoke": True,
        "cluster": args.cluster,
        "local_seconds": local["seconds"],
        "cluster_seconds": on_cluster["seconds"],
        "ratio": round(local["seconds"] / on_cluster["seconds"], 2),
        "compare_seconds": {
            "local": local["compare_seconds"],
            "cluster": on_cluster["compare_seconds"],
        },
        "combination_seconds": {
            "local": {r["combination"]: round(r["seconds"], 1) for r in local["rows"]},
            "cluster": {r["combination"]: round(r["seconds"], 1) for r in on_cluster["rows"]},
        },
        "same_metrics": all(r["same_metrics"] for r in rows),
        "identical_metrics_json": all(r["identical_metrics_json"] for r in rows),
        "failed": failed,
        "rows": rows,
    }
    device = "gpu-" + env["gpu"].split(" (")[0].replace(" ", "_") if "gpu" in env else "cpu"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"sweep_cluster-{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(rows)} combinations, --smoke: here {local['seconds']:.0f} s, on {args.cluster} "
        f"{on_cluster['seconds']:.0f} s (x{result['ratio']}); notebook 06 "
        f"{local['compare_seconds']:.0f} s / {on_cluster['compare_seconds']:.0f} s of those"
    )
    for r in rows:
        print(
            f"  {r['combination']}: accuracy {r['accuracy']:.4f} ({r['measured_on']}), "
            f"same metrics: {'yes' if r['same_metrics'] else 'NO'}, metrics.json identical: "
            f"{'yes' if r['identical_metrics_json'] else 'no'} "
            f"(ECE differs by {r['ece_difference']:.1e})"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
