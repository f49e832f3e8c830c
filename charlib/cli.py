"""The `predict` and `evaluate` commands: argument checks, output formatting, result files."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from charlib.files import atomic_write, write_json
from charlib.progress import bar

IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items())
QUICK_PER_CLASS = 20  # images per class for `evaluate --quick` (the seed's test_accuracy.py)
SHOWN = 20  # lines printed for a folder before only the summary


def describe(prediction) -> str:
    """'A (65) 89.3%, H (72) 4.1%, ...' or 'nothing drawn'; unsure ones say so."""
    if prediction.blank:
        return "nothing drawn"
    text = ", ".join(f"{g['char']} ({g['code']}) {g['confidence']:.1%}" for g in prediction)
    return f"{text}  [unsure]" if prediction.unsure else text


def _row(path: Path, prediction=None, error: str = "") -> dict:
    row = {"path": str(path), "status": prediction.status if prediction is not None else error}
    for rank, guess in enumerate(prediction or [], 1):
        row |= {
            f"char_{rank}": guess["char"],
            f"code_{rank}": guess["code"],
            f"confidence_{rank}": round(guess["confidence"], 6),
        }
    return row


def folder_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive, sorted), by the suffixes Pillow reads."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise ValueError(f"{folder}: no image files (png, jpg, bmp, ...) found")
    return found


def _write_results(out: Path, rows: list[dict]) -> None:
    """Rows as JSON, or as CSV (the suffix was checked before predicting)."""
    if out.suffix.lower() == ".json":
        write_json(out, rows)
    else:
        import pandas as pd

        table = pd.DataFrame(rows)
        for column in [c for c in table if c.startswith("code_")]:
            table[column] = table[column].astype("Int64")  # unreadable rows have none
        text = table.to_csv(index=False)
        atomic_write(out, lambda f: f.write(text.encode()))


def predict(args) -> None:
    """Print the top-k for each image; optionally write a CSV/JSON and a PNG visualisation."""
    from charlib.infer import Predictor

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"{out}: unknown result format; use a .csv or .json file name")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    files = [Path(f) for f in args.image] if args.image else folder_images(Path(args.folder))
    if args.save_viz and len(files) != 1:
        raise ValueError("--save-viz draws one image; pass a single --image")
    for path in files if args.image else []:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
    predictor = Predictor.from_run(args.run, device=args.device, backend=args.backend)
    rows, lines = [], []
    for path in bar(files, enabled=len(files) > 1, desc="predicting", unit="image"):
        try:
            prediction = predictor.predict(path, top_k=args.top_k)
        except ValueError as e:
            if args.image:  # named files: a bad one is an error, not a row
                raise
            rows.append(_row(path, error=f"unreadable: {str(e).removeprefix(f'{path}: ')}"))
            continue
        rows.append(_row(path, prediction))
        lines.append(f"{path}: {describe(prediction)}")
    print("\n".join(lines[:SHOWN]))
    if args.folder:
        bad = sum(r["status"].startswith("unreadable") for r in rows)
        print(
            f"{len(rows)} image(s), {bad} unreadable"
            + (f", first {SHOWN} shown" * (len(rows) > SHOWN))
        )
    if out is not None:
        _write_results(out, rows)
        print(f"results written to {out}")
    if args.save_viz:
        from charlib.canvas import prediction_figure

        figure = prediction_figure(predictor.input_image(files[0]), prediction, title=files[0].name)
        target = Path(args.save_viz)
        atomic_write(target, lambda f: figure.savefig(f, format="png", dpi=110))
        print(f"visualisation written to {target}")


def evaluate(args) -> None:
    """Evaluate a run on a split and print the headline metrics and the files written."""
    from charlib.evaluate import evaluate_run
    from charlib.infer import resolve_run

    per_class = QUICK_PER_CLASS if args.quick else args.per_class
    if per_class is not None and per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    run_dir = resolve_run(args.run)
    metrics = evaluate_run(
        run_dir, args.split, data=args.data, device=args.device, per_class=per_class
    )
    print(f"{run_dir.name} on {args.split} ({metrics['n_images']:,} images):")
    top = f"top-{metrics['top_k']} accuracy"
    shown = {"accuracy": "accuracy", "top_k_accuracy": top, "f1_macro": "F1 (macro)"}
    shown |= {"f1_weighted": "F1 (weighted)", "ece": "calibration error (ECE)"}
    for key, label in shown.items():
        print(f"  {label:<24} {metrics[key]:.4f}")
    for name in metrics.get("files", []):
        print(f"  wrote {name}")
