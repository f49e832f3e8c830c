"""A run scored on real handwriting whose classes may differ from the run's own (a run trained on
the built-in data has 95 classes, EMNIST 62): the question a user asks of the pad, "does it read
what people write?", answered on a named dataset and written to the run's real.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charlib.common import paths
from charlib.common.env import device_name
from charlib.common.files import write_json
from charlib.data.loading import load_split
from charlib.data.sources import data_name, split_label
from charlib.training import checkpoint
from charlib.training.model import predict_probs

RESULT = "real.json"  # in the run folder, beside metrics.json
AUTO = "auto"  # REAL_DATA's default: the shared EMNIST folder or a downloaded EMNIST, if present


def resolve_real(real_data, run_data) -> Path | str | None:
    """The real set REAL_DATA names ("auto", None or a folder), None when there is none or when
    it is the run's own data (its test split already says so)."""
    source = paths.real_handwriting() if real_data == AUTO else real_data
    if source is None or str(source).strip() == "":
        return None
    if run_data is not None and Path(str(source)).resolve() == Path(str(run_data)).resolve():
        return None
    return source


def score(run, source, *, split: str = "test", device: str = "auto", per_class=None) -> dict:
    """Top-1 and top-5 of a run on `source`'s split, every class of the run open (as on the pad):
    an image whose class the run lacks counts as a miss. Also the top-1 restricted to the data's
    classes (the usual score when the label set is known)."""
    run_dir = paths.resolve_run(run)
    ckpt = checkpoint.load(run_dir / "best.pt")
    data = load_split(source, split, progress=False)
    if per_class is not None:
        data = data.subset(per_class)
    model = checkpoint.model_from_checkpoint(ckpt, device_name(device))
    dev = next(model.parameters()).device
    probs = predict_probs([model], data.images, ckpt["params"], dev).numpy()
    run_codes = np.asarray(ckpt["classes"])
    truth = np.asarray(data.classes)[data.labels]
    top5 = run_codes[np.argsort(-probs, axis=1)[:, :5]]
    known = np.isin(run_codes, data.classes)
    restricted = run_codes[np.where(known, probs, -1).argmax(1)]
    return {
        "data": data_name(source),
        "label": f"real ({data_name(source)})",
        "split": split,
        "source": str(source),
        "n_images": int(len(truth)),
        "accuracy": float((top5[:, 0] == truth).mean()) if len(truth) else 0.0,
        "top5_accuracy": float((top5 == truth[:, None]).any(1).mean()) if len(truth) else 0.0,
        "restricted_accuracy": float((restricted == truth).mean()) if len(truth) else 0.0,
        "classes_missing": sorted(set(int(c) for c in data.classes) - set(run_codes.tolist())),
        "described": split_label(source, split),
    }


def score_run(run, source, **kwargs) -> dict:
    """`score`, written to the run's real.json (read by the reports index and run pages)."""
    result = score(run, source, **kwargs)
    write_json(paths.resolve_run(run) / RESULT, result)
    return result
