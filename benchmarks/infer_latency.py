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
Writes benchmarks/results/infer_latency-<device>.json.

Usage: python benchmarks/infer_latency.py [--device auto] [--repeats 200]
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

from charlib import checkpoint
from charlib.env import device_name, environment
from charlib.infer import Predictor
from charlib.model import resnet18
from charlib.strokes import Strokes, rasterize
from charlib.train import resolve_params

ROOT = Path(__file__).resolve().parents[1]
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
    params = resolve_params("fast", device=device, stem=stem)
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


if __name__ == "__main__":
    main()
