"""What the code runs on: versions, CPU/GPU, and the device to use."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def device_name(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; other names must be torch devices."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"unknown device {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'"
        ) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asked for, but no CUDA GPU is visible; use 'auto' or 'cpu'"
        )
    return device


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), e.g. 'AMD EPYC'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment() -> dict[str, str]:
    """Versions and hardware, for the notebooks' environment cell and the reports."""
    import numpy
    import torch
    import torchvision

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "cuda available": str(torch.cuda.is_available()),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        info["cuda"] = str(torch.version.cuda)
        info["cudnn"] = str(torch.backends.cudnn.version())
    return info
