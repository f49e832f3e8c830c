"""Predictions of a trained run on a split, and their metrics (scikit-learn), worst classes,
confused pairs and calibration; `evaluate_run` writes them and their figures to the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from charlib.common.codes import code_to_char, display_label
from charlib.common.env import device_name
from charlib.common.files import write_json
from charlib.common.paths import recorded_data, resolve_run
from charlib.common.progress import report
from charlib.data.loading import load_dataset
from charlib.data.sources import SPLITS
from charlib.inference import plots
from charlib.training import checkpoint
from charlib.training.model import predict_probs

FIGURE_DPI = 120
EXAMPLES_PER_PAIR = 8  # example indices kept per confused pair


@dataclass(frozen=True)
class Predictions:
    """Class probabilities for N images: probs float32 N×C, labels (true) int N, classes codes."""

    probs: np.ndarray
    labels: np.ndarray
    classes: tuple[int, ...]
    images: np.ndarray | None = None  # uint8 N×H×W, for the galleries
    split: str = ""
    source: str = ""
    run: dict = field(default_factory=dict)  # run name, checkpoint epoch, best_val_acc

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def predicted(self) -> np.ndarray:
        """The top class index of each image."""
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the top class of each image."""
        return self.probs.max(axis=1)


def predictions(probs, labels, classes, images=None, *, split="", source="", run=None):
    """Predictions from plain arrays (checked: shapes agree, labels index into classes)."""
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    classes = tuple(int(c) for c in classes)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(
            f"probs must be N×{len(classes)} (one column per class), got {probs.shape}"
        )
    if labels.shape != (len(probs),):
        raise ValueError(f"labels must hold one class index per row of probs ({len(probs)})")
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(classes):
        raise ValueError(f"labels must be class indices in 0..{len(classes) - 1}")
    if images is not None and len(images) != len(labels):
        raise ValueError(f"images must hold one image per label ({len(labels)})")
    return Predictions(probs, labels, classes, images, split, source, dict(run or {}))


def run_info(run_dir) -> dict:
    """What a run's best checkpoint says about itself: name, epoch, accuracy, data, classes."""
    folder = resolve_run(run_dir)
    return _info(folder, checkpoint.load(folder / "best.pt"))


def _info(folder: Path, ckpt: dict) -> dict:
    p = ckpt["params"]
    return {
        "run": folder.name,
        "run folder": str(folder),
        "checkpoint epoch": ckpt["epoch"],
        "best_val_acc": ckpt.get("best_val_acc"),
        "recipe": p.get("recipe"),
        "trained on": p.get("data"),
        "classes": len(ckpt["classes"]),
    }


def _members(members: list[Path], tta: bool) -> dict:
    """What an ensemble or TTA evaluation adds to the run's description."""
    extra = {"test-time augmentation": "on"} if tta else {}
    if len(members) > 1:
        extra["ensemble of"] = ", ".join(m.name for m in members)
    return extra


def check_classes(model_classes, data_classes, *, run: str, source: str) -> None:
    """Fail, naming both sides, when a checkpoint's classes are not the data's classes."""
    model_classes, data_classes = tuple(model_classes), tuple(data_classes)
    if model_classes == data_classes:
        return

    def shown(codes):
        return ", ".join(display_label(c) for c in sorted(codes)[:5]) or "none"

    only_model = set(model_classes) - set(data_classes)
    only_data = set(data_classes) - set(model_classes)
    raise ValueError(
        f"class lists differ: the run {run} has {len(model_classes)} classes, the data {source} "
        f"has {len(data_classes)} (only in the run: {shown(only_model)}; only in the data: "
        f"{shown(only_data)}); evaluate on the data the run trained on (pass data=) "
        "or train a run on this data"
    )


def predict_split(
    run_dir,
    split: str = "test",
    *,
    data=None,
    device: str = "auto",
    per_class: int | None = None,
    seed: int = 0,
    tta: bool = False,
) -> Predictions:
    """Probabilities of the run's best checkpoint on one split of `data` (default: its own data).

    `run_dir` may be a list of runs: an ensemble, their probabilities averaged (members must
    share classes and input). `tta` also averages over `augment.TTA_VIEWS`. `per_class`
    evaluates at most that many images of each class (picked with `seed`); the
    train/validation/test cut of an unsplit folder uses the run's own seed, as training did.
    """
    import torch

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise ValueError(f"per_class must be a positive integer or None, got {per_class!r}")
    members = [resolve_run(r) for r in (run_dir if isinstance(run_dir, list) else [run_dir])]
    ckpts = [checkpoint.load(m / "best.pt") for m in members]
    checkpoint.check_members(ckpts, [str(m) for m in members])
    folder, ckpt = members[0], ckpts[0]
    params = ckpt["params"]
    source = data if data is not None else recorded_data(params.get("data"))
    if source is None:
        raise ValueError(
            f"{folder}: the run does not record the data it trained on; pass data= "
            "(--data on the command line): the folder, zip or 'synth' preset it trained on"
        )
    part = load_dataset(source, seed=params.get("seed", 0), progress=False)[split]
    check_classes(ckpt["classes"], part.classes, run=str(folder), source=f"{source} ({split})")
    if per_class:
        part = part.subset(per_class, seed)
    if len(part) == 0:
        raise ValueError(f"{source}: the {split} split holds no images to evaluate")
    dev = device_name(device)
    report(f"predicting {len(part):,} {split} images of {source} on {dev}")
    models = [checkpoint.model_from_checkpoint(c, dev) for c in ckpts]
    probs = predict_probs(models, part.images, params, torch.device(dev), tta=tta).numpy()
    return predictions(
        probs,
        part.labels,
        part.classes,
        part.images,
        split=split,
        source=str(source),
        run=_info(folder, ckpt) | _members(members, tta),
    )


def _all(preds: Predictions) -> np.ndarray:
    return np.arange(len(preds.classes))


def _check(preds: Predictions) -> None:
    if len(preds) == 0:
        raise ValueError("no predictions to evaluate (0 images)")


def metrics(preds: Predictions, *, top_k: int = 5) -> dict:
    """Overall metrics and a per-class list, as plain JSON-ready numbers.

    Macro averages run over every class of the model, as in `classification_report`: a class
    with no image in the split counts as 0.
    """
    _check(preds)
    y, pred, labels = preds.labels, preds.predicted, _all(preds)
    top = (
        1.0
        if top_k >= len(labels)
        else skm.top_k_accuracy_score(y, preds.probs, k=top_k, labels=labels)
    )
    out = {
        "n_images": len(preds),
        "n_classes": len(labels),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "top_k": top_k,
        "top_k_accuracy": float(top),
    }
    for average in ("weighted", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, labels=labels, average=average, zero_division=0
        )
        out |= {f"precision_{average}": float(p), f"recall_{average}": float(r)}
        out[f"f1_{average}"] = float(f)
    out["ece"] = calibration(preds)["ece"]
    out["per_class"] = class_metrics(preds)
    return out


def class_metrics(preds: Predictions) -> list[dict]:
    """Per class: code, char, label, support, accuracy (= recall), precision, recall, f1."""
    p, r, f, support = skm.precision_recall_fscore_support(
        preds.labels, preds.predicted, labels=_all(preds), zero_division=0
    )
    return [
        {
            "code": code,
            "char": code_to_char(code),
            "label": display_label(code),
            "support": int(support[k]),
            "accuracy": float(r[k]) if support[k] else None,
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
        }
        for k, code in enumerate(preds.classes)
    ]


def classification_report(preds: Predictions) -> dict:
    """scikit-learn's classification report, keyed by display labels like 'A (65)'."""
    _check(preds)
    return skm.classification_report(
        preds.labels,
        preds.predicted,
        labels=_all(preds),
        target_names=[display_label(c) for c in preds.classes],
        output_dict=True,
        zero_division=0,
    )


def confusion(preds: Predictions, normalize: bool = True) -> np.ndarray:
    """C×C confusion matrix, rows = true class, columns = predicted; rows sum to 1 if normalized."""
    return skm.confusion_matrix(
        preds.labels, preds.predicted, labels=_all(preds), normalize="true" if normalize else None
    )


def worst_classes(preds: Predictions, k: int = 10):
    """The k classes with the lowest accuracy (ties: lower F1 first), and what they become."""
    import pandas as pd

    counts = confusion(preds, normalize=False)
    off = counts - np.diag(np.diag(counts))
    rows = []
    for i, row in enumerate(class_metrics(preds)):
        if not row["support"]:
            continue
        j = int(off[i].argmax())
        rows.append(
            {
                "label": row["label"],
                "support": row["support"],
                "accuracy": row["accuracy"],
                "precision": row["precision"],
                "f1": row["f1"],
                "mostly_confused_with": display_label(preds.classes[j]) if off[i, j] else "",
                "share": float(off[i, j] / row["support"]),
                "code": row["code"],
            }
        )
    table = pd.DataFrame(rows, columns=["label", "support", "accuracy", "precision", "f1"])
    if rows:
        table = pd.DataFrame(rows).sort_values(["accuracy", "f1", "code"], kind="stable")
    return table.head(k).reset_index(drop=True)


def confused_pairs(preds: Predictions, k: int = 10):
    """The k most frequent (true, predicted) mistakes: count, share of the true class, examples."""
    import pandas as pd

    counts = confusion(preds, normalize=False)
    support = counts.sum(axis=1)
    np.fill_diagonal(counts, 0)
    true_idx, pred_idx = np.nonzero(counts)
    share = counts[true_idx, pred_idx] / support[true_idx]
    # most images first, then the larger share of its class, then class order
    order = np.lexsort((pred_idx, true_idx, -share, -counts[true_idx, pred_idx]))[:k]
    predicted = preds.predicted
    rows = []
    for i, j in zip(true_idx[order], pred_idx[order], strict=True):
        examples = np.flatnonzero((preds.labels == i) & (predicted == j))
        # most confident mistakes first: the clearest examples of the confusion
        examples = examples[np.argsort(-preds.confidence[examples], kind="stable")]
        rows.append(
            {
                "true": display_label(preds.classes[i]),
                "predicted": display_label(preds.classes[j]),
                "count": int(counts[i, j]),
                "share": float(counts[i, j] / support[i]),
                "examples": examples[:EXAMPLES_PER_PAIR].tolist(),
                "true_code": preds.classes[i],
                "predicted_code": preds.classes[j],
            }
        )
    columns = ["true", "predicted", "count", "share", "examples", "true_code", "predicted_code"]
    return pd.DataFrame(rows, columns=columns)


def calibration(preds: Predictions, bins: int = 15) -> dict:
    """Expected calibration error over `bins` equal-width confidence bins, and each bin's
    mean confidence, accuracy and count (None for an empty bin)."""
    _check(preds)
    conf = preds.confidence.astype(np.float64)
    correct = (preds.predicted == preds.labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; a confidence of 0 joins bin 0
    which = np.digitize(conf, edges[1:-1], right=True)
    out = {"ece": 0.0, "bins": bins, "edges": edges.tolist(), "confidence": [], "accuracy": []}
    out["count"] = np.bincount(which, minlength=bins).tolist()
    for b in range(bins):
        mine = which == b
        if not mine.any():
            out["confidence"].append(None)
            out["accuracy"].append(None)
            continue
        c, a = float(conf[mine].mean()), float(correct[mine].mean())
        out["confidence"].append(c)
        out["accuracy"].append(a)
        out["ece"] += mine.sum() / len(conf) * abs(a - c)
    out["ece"] = float(out["ece"])
    return out


def evaluation_figures(preds: Predictions, *, top_pairs: int = 10, misclassified: int = 40) -> dict:
    """Every evaluation figure, by the file name it is saved under (without .png)."""
    return {
        "confusion_matrix": plots.confusion_matrix(confusion(preds), preds.classes),
        "class_accuracy": plots.class_accuracy(class_metrics(preds)),
        "misclassified": plots.misclassified_gallery(preds, n=misclassified),
        "confused_pairs": plots.confused_pairs(confused_pairs(preds, top_pairs), preds),
        "reliability": plots.reliability_diagram(calibration(preds)),
    }


def write_evaluation(run_dir, preds: Predictions, *, figures=True, top_k: int = 5) -> dict:
    """Write metrics.json, classification_report.json and the figures of `preds` into run_dir.

    `figures`: True draws them; a dict from `evaluation_figures(preds)` is saved as it is;
    False writes none.
    Returns the metrics, with a "files" entry naming what was written.
    """
    folder = Path(run_dir)
    found = metrics(preds, top_k=top_k)
    per = found.pop("per_class")
    run = preds.run or {"run": folder.name}
    head = {
        "run": run.get("run", folder.name),
        "split": preds.split,
        "data": preds.source,
        "checkpoint_epoch": run.get("checkpoint epoch"),
        "best_val_acc": run.get("best_val_acc"),
    }
    drawn = evaluation_figures(preds) if figures is True else (figures or {})
    files = ["metrics.json", "classification_report.json", *(f"{n}.png" for n in drawn)]
    result = {**head, **found, "files": files}
    write_json(folder / "classification_report.json", classification_report(preds))
    for name, fig in drawn.items():
        fig.savefig(folder / f"{name}.png", dpi=FIGURE_DPI)
    write_json(
        folder / "metrics.json", {**result, "calibration": calibration(preds), "per_class": per}
    )
    return result


def evaluate_run(
    run_dir,
    split: str = "test",
    *,
    data=None,
    device: str = "auto",
    per_class: int | None = None,
    figures: bool = True,
) -> dict:
    """Evaluate a run's best checkpoint on a split and write its metrics and figures there.

    `per_class=N` is the quick mode: N images of each class. Returns the overall metrics.
    """
    preds = predict_split(run_dir, split, data=data, device=device, per_class=per_class)
    return write_evaluation(resolve_run(run_dir), preds, figures=figures)
