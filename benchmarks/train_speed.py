"""Both training recipes on the same data and device in one run: speed and accuracy.

Measures, for recipe="seed" (the seed project's: 224 px RGB, PIL augmentation in a 4-worker
DataLoader, batch 64) and recipe="fast" (device-resident uint8 data, batched augmentation):
steady-state training images/s, seconds of training to reach each validation accuracy, and the
final validation and test accuracy. Prints the ratios and writes
benchmarks/results/train_speed-<device>.json.

On a CPU the seed recipe runs about 11 images/s, so by default it is timed on a subset for one
epoch (its images/s is what the ratio needs); on a GPU both recipes train on everything.

DDP (`--ddp N`): the fast recipe through `charlib train`, once as 1 process and once as N under
torchrun (`--nproc_per_node N`, gloo on CPUs, NCCL on GPUs), same data, epochs and per-process
batch: images/s of each, the scaling (N / 1) and their accuracy. `--ddp-only` skips the recipes.

Usage: python benchmarks/train_speed.py [--data PATH] [--device auto] [--fast-epochs N] ...
       python benchmarks/train_speed.py --ddp 2 --ddp-only [--ddp-epochs 2] [--ddp-per-class N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from charlib.common.env import device_name, environment
from charlib.data.loading import load_dataset
from charlib.training.checkpoint import load as load_checkpoint
from charlib.training.checkpoint import model_from_checkpoint
from charlib.training.model import predict_logits
from charlib.training.train import fit

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.80, 0.83, 0.86, 0.88)
# Dense bf16 tensor-core peaks (FLOP/s), for the share of the chip a run achieves.
BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L4": 121e12}


def train_flops_per_image(params: dict) -> float:
    """FLOPs of one training step (forward and backward) per image, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    from charlib.training.model import build

    net = build(params["model"], len(params["classes"]), stem=params["stem"],
                in_channels=params["channels"])  # fmt: skip
    x = torch.zeros(4, params["channels"], params["img_size"], params["img_size"])
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    return counter.get_total_flops() / 4


def peak_share(flops_per_s: float) -> float | None:
    """Achieved FLOP/s over the GPU's bf16 peak, when the GPU is one we know."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
    return round(flops_per_s / peak, 4) if peak else None


def time_to(history: list[dict], threshold: float) -> float | None:
    """Training seconds (validation excluded) until validation accuracy first reaches threshold."""
    spent = 0.0
    for record in history:
        spent += record["seconds"]
        if record["val_acc"] >= threshold:
            return round(spent, 2)
    return None


def test_accuracy(run_dir: Path, test, device: str) -> float:
    ckpt = load_checkpoint(run_dir / "best.pt")
    logits = predict_logits(
        model_from_checkpoint(ckpt, device), test.images, ckpt["params"], torch.device(device)
    )
    return float((logits.argmax(1).numpy() == test.labels).mean())


def run(recipe: str, train, val, test, device: str, out: Path, **kwargs) -> dict:
    run_dir = out / recipe
    summary = fit(
        train,
        val,
        run_dir=run_dir,
        recipe=recipe,
        device=device,
        resume=False,
        patience=10_000,
        **kwargs,
    )
    history = json.loads((run_dir / "history.json").read_text())
    # Steady state: the first epoch pays for worker start-up, cuDNN autotuning and compilation.
    steady = history[1:] or history
    ips = sum(r["images_per_s"] for r in steady) / len(steady)
    params = json.loads((run_dir / "params.json").read_text())
    flops = train_flops_per_image(params)
    return {
        # the one-off cost of the first epoch over a steady one (start-up, autotuning, compiling)
        "startup_s": round(history[0]["seconds"] - history[0]["images"] / ips, 2)
        if len(history) > 1
        else None,
        "train_gflop_per_image": round(flops / 1e9, 3),
        "achieved_tflops": round(flops * ips / 1e12, 3),
        "bf16_peak_share": peak_share(flops * ips),
        "recipe": recipe,
        "train_images": len(train),
        "epochs": len(history),
        "images_per_s": round(sum(r["images_per_s"] for r in steady) / len(steady), 1),
        "train_seconds": summary["train_seconds"],
        "time_to_val_acc_s": {f"{t:.2f}": time_to(history, t) for t in THRESHOLDS},
        "best_val_acc": round(summary["best_val_acc"], 4),
        "test_acc": round(test_accuracy(run_dir, test, device), 4),
        "history": history,
    }


def ddp_scaling(args, device: str, out: Path, test) -> dict:
    """The fast recipe as 1 process, then as `args.ddp` processes under torchrun: images/s."""
    rows = []
    for n in (1, args.ddp):
        run_dir = out / f"ddp{n}"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={n}", "-m", "charlib", "train", "--data", args.data,
            "--run-name", str(run_dir), "--device", device, "--epochs", str(args.ddp_epochs),
        ]  # fmt: skip
        if args.ddp_per_class:
            cmd += ["--per-class", str(args.ddp_per_class)]
        print(f"ddp: {n} process(es) ...", flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "CHARLIB_PROGRESS": "0"})
        history = json.loads((run_dir / "history.json").read_text())
        params = json.loads((run_dir / "params.json").read_text())
        steady = history[1:] or history
        rows.append(
            {
                "processes": n,
                "images_per_s": round(sum(r["images_per_s"] for r in steady) / len(steady), 1),
                "global_batch": params.get("global_batch", params["batch_size"]),
                "lr": params["lr"],
                "best_val_acc": round(max(r["val_acc"] for r in history), 4),
                "test_acc": round(test_accuracy(run_dir, test, device), 4),
                "history": history,
            }
        )
    scaling = round(rows[1]["images_per_s"] / rows[0]["images_per_s"], 2)
    print(f"ddp: {args.ddp} processes train at {scaling}x one process's images/s")
    return {"processes": args.ddp, "scaling": scaling, "rows": rows}


def _variant(text: str) -> dict:
    """'stem=imagenet,batch_size=1024' -> {'stem': 'imagenet', 'batch_size': 1024}."""
    import ast

    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def main() -> None:
    default = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default / "emnist-byclass"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fast-epochs", type=int, default=None, help="default: recipe's")
    parser.add_argument("--fast-stem", default=None, help="default: recipe's for the device")
    parser.add_argument("--seed-epochs", type=int, default=None, help="default: 2 GPU, 1 CPU")
    parser.add_argument(
        "--seed-per-class",
        type=int,
        default=None,
        help="training images per class for the seed recipe (default: all on GPU, 10 on CPU)",
    )
    parser.add_argument(
        "--eval-per-class",
        type=int,
        default=None,
        help="validation/test images per class (default: all on GPU, 40 on CPU, "
        "where the seed recipe evaluates about 50 images/s)",
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--ddp", type=int, default=0, help="also N processes under torchrun")
    parser.add_argument("--ddp-only", action="store_true", help="only the DDP scaling rows")
    parser.add_argument("--ddp-epochs", type=int, default=2)
    parser.add_argument(
        "--ddp-per-class", type=int, default=None, help="training images per class for DDP rows"
    )
    parser.add_argument(
        "--fast-variant",
        action="append",
        default=[],
        metavar="K=V,...",
        help="also train the fast recipe with these fit() keywords, e.g. "
        "'stem=imagenet,batch_size=1024' (repeatable; each measured against the same seed run)",
    )
    args = parser.parse_args()
    device = device_name(args.device)
    gpu = device.startswith("cuda")
    ds = load_dataset(args.data, progress=False)
    seed_train = ds.train
    per_class = args.seed_per_class if args.seed_per_class is not None else (None if gpu else 10)
    if per_class:
        seed_train = ds.train.subset(per_class=per_class, seed=0)
    val, test = ds.validation, ds.test
    per_eval = args.eval_per_class if args.eval_per_class is not None else (None if gpu else 40)
    if per_eval:
        val, test = val.subset(per_class=per_eval, seed=0), test.subset(per_class=per_eval, seed=0)
    seed_epochs = args.seed_epochs or (2 if gpu else 1)
    if args.ddp_only:
        ddp_main(args, device, test)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ddp = ddp_scaling(args, device, out, test) if args.ddp > 1 else None
        seed = run("seed", seed_train, val, test, device, out, epochs=seed_epochs)
        fast = run(
            "fast",
            ds.train,
            val,
            test,
            device,
            out,
            epochs=args.fast_epochs,
            stem=args.fast_stem,
            compile=args.compile,
        )
        variants = [
            run("fast", ds.train, val, test, device, out / f"variant{i}", **kw) | {"variant": kw}
            for i, kw in enumerate(_variant(v) for v in args.fast_variant)
        ]
    env = environment()
    result = {
        "benchmark": "train_speed",
        "device": env.get("gpu", f"{env['cpu']} ({os.cpu_count()} cores, {platform.machine()})"),
        "environment": env,
        "data": args.data,
        "validation_images": len(val),
        "test_images": len(test),
        "speedup_images_per_s": round(fast["images_per_s"] / seed["images_per_s"], 1),
        "seed": seed,
        "fast": fast,
        "variants": [
            v | {"speedup_images_per_s": round(v["images_per_s"] / seed["images_per_s"], 1)}
            for v in variants
        ],
        "ddp": ddp,
    }
    tag = "gpu-" + env["gpu"].split(" (")[0].replace(" ", "_") if gpu else "cpu"
    path = ROOT / "benchmarks" / "results" / f"train_speed-{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"device: {result['device']}")
    print(
        f"{'recipe':<6} {'images/s':>9} {'epochs':>6} {'best val':>8} {'test':>6}  time to val acc"
    )
    for r in (seed, fast, *variants):
        reached = ", ".join(
            f"{k}: {v if v is not None else '-'}s" for k, v in r["time_to_val_acc_s"].items()
        )
        print(
            f"{r['recipe']:<6} {r['images_per_s']:>9.0f} {r['epochs']:>6} "
            f"{r['best_val_acc']:>8.3f} {r['test_acc']:>6.3f}  {reached}  "
            f"start-up {r['startup_s']} s, {r['achieved_tflops']} TFLOP/s"
            + (f" = {r['bf16_peak_share']:.1%} of bf16 peak" if r["bf16_peak_share"] else "")
        )
    for v in result["variants"]:
        print(f"variant {v['variant']}: {v['speedup_images_per_s']}x the seed's images/s")
    print(f"fast / seed images/s: {result['speedup_images_per_s']}x   -> {path.relative_to(ROOT)}")


def ddp_main(args, device: str, test) -> None:
    """--ddp-only: the scaling rows alone, written to train_speed_ddp-<device>.json."""
    with tempfile.TemporaryDirectory() as tmp:
        ddp = ddp_scaling(args, device, Path(tmp), test)
    env = environment()
    gpu = device.startswith("cuda")
    tag = "gpu-" + env["gpu"].split(" (")[0].replace(" ", "_") if gpu else "cpu"
    result = {
        "benchmark": "train_speed_ddp",
        "device": env.get("gpu", f"{env['cpu']} ({os.cpu_count()} cores, {platform.machine()})"),
        "environment": env,
        "data": args.data,
        "epochs": args.ddp_epochs,
        "per_class": args.ddp_per_class,
        **ddp,
    }
    path = ROOT / "benchmarks" / "results" / f"train_speed_ddp-{tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for r in ddp["rows"]:
        print(
            f"{r['processes']} process(es): {r['images_per_s']:.0f} images/s, global batch "
            f"{r['global_batch']}, lr {r['lr']}, best val {r['best_val_acc']:.3f}, "
            f"test {r['test_acc']:.3f}"
        )
    print(f"-> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
