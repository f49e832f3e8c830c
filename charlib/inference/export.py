"""A trained run's model as ONNX: fp32 (`onnx`) and static int8 (`int8`) for onnxruntime.

    export.onnx("runs/default")          # -> runs/default/model.onnx (dynamic batch)
    export.int8("runs/default")          # -> runs/default/model-int8.onnx (calibrated)

Both files sit beside best.pt and are rebuilt when best.pt is newer. The int8 model is ONNX
Runtime's static quantization (QDQ, per-channel int8 weights, uint8 activations) with ranges
calibrated on `CALIBRATION_PER_CLASS` training images of each class, put through exactly the
transform prediction uses (`augment.eval_input`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from charlib.common.paths import recorded_data, resolve_run
from charlib.common.progress import report
from charlib.data.loading import load_split
from charlib.training import checkpoint
from charlib.training.augment import eval_input

FP32, INT8 = "model.onnx", "model-int8.onnx"
CALIBRATION_PER_CLASS = 8  # training images per class the int8 ranges are measured on
CALIBRATION_BATCH = 64


def onnx(run, path=None, *, opset: int = 18) -> Path:
    """Write the run's best model as ONNX (input 'input': N×C×H×W float, dynamic N)."""
    run_dir = resolve_run(run)
    ckpt = checkpoint.load(run_dir / "best.pt")
    return write_onnx(ckpt, Path(path) if path else run_dir / FP32, opset=opset)


def current(run_dir: Path, name: str) -> Path | None:
    """runs/<run>/<name> when it exists and is not older than best.pt, else None."""
    path = Path(run_dir) / name
    if path.is_file() and path.stat().st_mtime >= (Path(run_dir) / "best.pt").stat().st_mtime:
        return path
    return None


def write_onnx(ckpt: dict, target: Path, *, opset: int = 18) -> Path:
    """A checkpoint's model -> ONNX at `target`, written atomically (a temp file renamed)."""
    p = ckpt["params"]
    model = checkpoint.model_from_checkpoint(ckpt, "cpu")
    example = torch.zeros(1, p["channels"], p["img_size"], p["img_size"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),  # by position: any forward's
            opset_version=opset,
            dynamo=True,
            external_data=False,  # one self-contained file, renamed into place atomically
            verbose=False,
        )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def int8(run, path=None, *, data=None, per_class: int = CALIBRATION_PER_CLASS) -> Path:
    """Static int8 ONNX of the run's best model, calibrated on its training images.

    `data` overrides the data source the run recorded (params.json "data").
    """
    run_dir = resolve_run(run)
    ckpt = checkpoint.load(run_dir / "best.pt")
    fp32 = current(run_dir, FP32) or write_onnx(ckpt, run_dir / FP32)
    images = calibration_images(ckpt, data, per_class)
    target = Path(path) if path else run_dir / INT8
    report(f"int8: calibrating on {len(images):,} training images of {run_dir.name}")
    quantize(fp32, target, images, ckpt["params"])
    return target


def calibration_images(ckpt: dict, data, per_class: int) -> np.ndarray:
    """uint8 N×size×size training images, `per_class` of each class (seeded)."""
    params = ckpt["params"]
    source = data if data is not None else recorded_data(params.get("data"))
    if source is None:
        raise ValueError(
            "int8 calibration needs the run's training images, and the run does not record "
            "its data; pass data= (--data): the folder, zip or preset it trained on"
        )
    train = load_split(source, "train", seed=params.get("seed", 0), progress=False)
    if len(train) == 0:
        raise ValueError(f"{source}: no training images to calibrate int8 ranges on")
    return train.subset(per_class, seed=0).images


def quantize(fp32: Path, target: Path, images: np.ndarray, params: dict) -> Path:
    """ONNX Runtime static quantization (QDQ, per-channel), written atomically to `target`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(images), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self.batches, None)
            if start is None:
                return None
            chunk = np.ascontiguousarray(images[start : start + CALIBRATION_BATCH])
            return {"input": eval_input(torch.from_numpy(chunk), params).numpy()}

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8-") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        os.replace(out, target)
    return target
