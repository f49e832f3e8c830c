"""End-to-end latency of one drawing -> top-5, the seed's path against ours, in one run.

Paths, each from the same input to the same top-5 list:
- seed: the seed web app's path - the canvas as a PIL RGB image, grayscale, crop to the ink's
  box, pad, PIL resize to 224×224 RGB, ToTensor + ImageNet normalisation, fp32 ResNet-18
  (ImageNet stem), softmax, top-5.
- torch: `Predictor` (crop/pad/resize to the training size, our ResNet-18 at that size; bf16
  and channels-last on CUDA) for each model configuration we train (CPU and GPU defaults).
- onnx: the same Predictor with backend="onnx" (onnxruntime on the CPU).
Inputs: strokes (rasterised by us) and a 280×280 PIL image of the same drawing.
Latency: p50/p95 over --repeats single-drawing calls after --warmup calls, in ms.

int8 (`--int8`, on by default when the shared EMNIST data is there): a model trained on EMNIST
(`--int8-run R`, or one trained here at a 120 s CPU time budget), exported as fp32 ONNX and as
static int8 ONNX (`charlib.inference.export.int8`, calibrated on training images); both scored on
the whole shared EMNIST test split (accuracy and the drop in points), and timed: one image through
the session, one drawing end to end (Predictor), and a batch of 256 (images/s).
Writes benchmarks/results/infer_latency-<device>.json.

Usage: python benchmarks/infer_latency.py [--device auto] [--repeats 200] [--int8-run R]
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
import torch
from PIL import Image
from torchvision import transforms

from charlib.common.env import device_name, environment
from charlib.data.loading import load_dataset
from charlib.inference import export
from charlib.inference.infer import Predictor
from charlib.training import checkpoint
from charlib.training.augment import eval_input
from charlib.training.model import resnet18
from charlib.training.settings import Settings
from charlib.training.train import fit
from charlib.vision.strokes import Strokes, rasterize

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHARLIB_SHARED_DATA") or ROOT.parent / "shared" / "data")
CLASSES = list(range(33, 127)) + [999]  # the built-in data's 95 classes
DRAWING = Strokes([[(140, 40), (80, 240)], [(140, 40), (200, 240)], [(100, 160), (180, 160)]])


class SeedPath:
    """The seed app's /predict: PIL preprocessing to 224 RGB, fp32 ResNet-18."""

    def __init__(self, device: torch.device):
        self.device = device
        self.model = resnet18(len(CLASSES), stem="imagenet", in_channels=3).to(device).eval()
        self.to_tensor = transforms.Compose(
            [
                transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    @torch.inference_mode()
    def __call__(self, image: Image.Image) -> list[tuple[int, float]]:
        gray = image.convert("L")
        box = gray.point(lambda v: 255 if v > 40 else 0).getbbox()
        crop = gray.crop(box) if box else gray
        side = int(max(crop.size) * 1.2)
        square = Image.new("L", (side, side), 0)
        square.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
        rgb = square.resize((224, 224), Image.Resampling.BILINEAR).convert("RGB")
        x = self.to_tensor(rgb).unsqueeze(0).to(self.device)
        probs = torch.softmax(self.model(x), 1)[0]
        top = torch.topk(probs, 5)
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))


def our_checkpoint(stem: str, device: str) -> dict:
    """A checkpoint as `fit` writes it (untrained weights: latency does not depend on them)."""
    params = Settings(device=device, stem=stem).params()
    params.update(img_size=28, data_size=28, ink_fill=24 / 28, classes=CLASSES)
    model = resnet18(len(CLASSES), stem=stem, in_channels=params["channels"])
    return checkpoint.of_model(model, params)


def latency(fn, x, *, warmup: int, repeats: int, cuda: bool) -> dict:
    """p50/p95/mean milliseconds of fn(x), one call at a time, synchronised on CUDA."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(x)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    t = np.array(times)
    return {
        "p50_ms": round(float(np.percentile(t, 50)), 3),
        "p95_ms": round(float(np.percentile(t, 95)), 3),
        "mean_ms": round(float(t.mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--emnist", default=str(SHARED / "emnist-byclass"))
    parser.add_argument("--int8-run", default=None, help="an EMNIST run (default: train one)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 comparison")
    args = parser.parse_args()
    device = device_name(args.device)
    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    image = Image.fromarray(rasterize(DRAWING)).convert("RGB")
    timing = {"warmup": args.warmup, "repeats": args.repeats, "cuda": cuda}
    rows = []

    def measure(name: str, fn, x, on: str) -> None:
        rows.append({"path": name, "device": on, **latency(fn, x, **timing)})
        print(f"{name:<44} {on:<5} p50 {rows[-1]['p50_ms']:8.3f} ms  p95 {rows[-1]['p95_ms']:8.3f}")

    seed = SeedPath(torch.device(device))
    measure("seed (PIL 224 RGB, fp32, imagenet stem)", seed, image, device)
    with tempfile.TemporaryDirectory() as tmp:
        for stem, label in (("imagenet", "CPU default"), ("small", "GPU default")):
            ckpt = our_checkpoint(stem, device)
            run = Path(tmp) / stem
            checkpoint.save(run / "best.pt", ckpt)
            ours = Predictor(ckpt, device=device)
            measure(f"torch, {stem} stem ({label}), strokes", ours.predict, DRAWING, device)
            measure(f"torch, {stem} stem ({label}), PIL image", ours.predict, image, device)
            onnx = Predictor.from_run(run, backend="onnx")
            measure(f"onnx, {stem} stem ({label}), strokes", onnx.predict, DRAWING, "cpu")
            measure(f"onnx, {stem} stem ({label}), PIL image", onnx.predict, image, "cpu")
    seed_p50 = rows[0]["p50_ms"]
    same_device = [r for r in rows[1:] if r["device"] == device] or rows[1:]
    best = min(same_device, key=lambda r: r["p50_ms"])
    best_any = min(rows[1:], key=lambda r: r["p50_ms"])
    env = environment()
    result = {
        "benchmark": "infer_latency",
        "device": env.get("gpu", f"CPU ({os.cpu_count()} cores, {platform.machine()})"),
        "environment": env,
        "torch_threads": torch.get_num_threads(),
        "seed_p50_ms": seed_p50,
        "best": best_any,
        "speedup_p50_vs_seed": round(seed_p50 / best_any["p50_ms"], 1),
        "best_on_device": best,
        "speedup_p50_vs_seed_on_device": round(seed_p50 / best["p50_ms"], 1),
        "rows": rows,
    }
    if not args.no_int8 and Path(args.emnist).exists():
        result["int8"] = int8_comparison(args, timing | {"cuda": False})
    tag = "gpu-" + env["gpu"].split(" (")[0].replace(" ", "_") if cuda else "cpu"
    path = ROOT / "benchmarks" / "results" / f"infer_latency-{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"best: {best_any['path']} on {best_any['device']}, p50 {best_any['p50_ms']} ms = "
        f"{result['speedup_p50_vs_seed']}x faster than the seed path ({seed_p50} ms on {device})"
    )
    if cuda:
        print(f"best on {device}: {best['path']}, p50 {best['p50_ms']} ms")
    print(f"-> {path.relative_to(ROOT)}")


def int8_comparison(args, timing: dict) -> dict:
    """fp32 against static int8 ONNX of one EMNIST model: test accuracy and CPU latency."""
    emnist = load_dataset(args.emnist, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.int8_run) if args.int8_run else Path(tmp) / "emnist"
        if not args.int8_run:
            print("int8: training an EMNIST model at a 120 s CPU time budget ...")
            fit(emnist.train, emnist.validation, run_dir=run, device="cpu", time_budget=120,
                progress=False, data_source=args.emnist)  # fmt: skip
        ckpt = checkpoint.load(run / "best.pt")
        fp32 = export.write_onnx(ckpt, Path(tmp) / "fp32.onnx")
        start = time.perf_counter()
        int8 = export.int8(run, Path(tmp) / "int8.onnx", data=args.emnist)
        calibration_s = time.perf_counter() - start
        x = eval_input(torch.from_numpy(emnist.test.images), ckpt["params"]).numpy()
        truth, classes = emnist.test.codes, np.asarray(ckpt["classes"])
        rows = {}
        for name, path, backend in (("fp32", fp32, "onnx"), ("int8", int8, "onnx-int8")):
            p = Predictor(ckpt, backend=backend, onnx=path)
            rows[name] = onnx_row(p.session, path, x, truth, classes, timing)
            rows[name]["drawing_end_to_end"] = latency(p.predict, DRAWING, **timing)
            print(f"int8: {name:<5} " + ", ".join(f"{k} {v}" for k, v in rows[name].items()))
    drop = round(rows["fp32"]["accuracy_pct"] - rows["int8"]["accuracy_pct"], 2)
    speed = rows["int8"]["batch_images_per_s"] / rows["fp32"]["batch_images_per_s"]
    single = rows["fp32"]["single"]["p50_ms"] / rows["int8"]["single"]["p50_ms"]
    print(
        f"int8: accuracy drop {drop} points (target <= 0.3), batch {speed:.2f}x, "
        f"single image {single:.2f}x the fp32 speed; calibration {calibration_s:.0f} s"
    )
    return {
        "test_images": len(truth),
        "calibration_s": round(calibration_s, 1),
        "accuracy_drop_points": drop,
        "batch_speedup": round(speed, 2),
        "single_speedup": round(single, 2),
        **rows,
    }


def onnx_row(session, path: Path, x: np.ndarray, truth, classes, timing: dict) -> dict:
    """Accuracy over x and the latency of the Predictor's own session (as served): one
    image, and batches of 256."""

    def run(batch):
        return session.run(None, {"input": batch})[0]

    start = time.perf_counter()
    logits = np.concatenate([run(x[i : i + 256]) for i in range(0, len(x), 256)])
    seconds = time.perf_counter() - start
    return {
        "accuracy_pct": round(100 * float((classes[logits.argmax(1)] == truth).mean()), 2),
        "batch_images_per_s": round(len(x) / seconds),
        "single": latency(run, x[:1], **timing),
        "size_mb": round(path.stat().st_size / 1e6, 2),
    }


if __name__ == "__main__":
    main()
