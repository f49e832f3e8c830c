"""The model on real photos and scans of handwritten characters, one folder per source.

Each folder holds one source's images named `<ascii code>_<n>.<ext>` (`65_3.jpg`: an "A"); other
files are left out and counted. Every image is read as bytes and goes through
`Predictor.predict_many`, the path a photo a user uploads takes (`preprocess.model_view`: the ink
of a photo or scan found by `ink.find`, a small image on a plain background like the training
images' taken as it is; then framed as the training images are), every class of the model open.

Each source is split into two parts by its file names alone: the first byte of sha256("<n>") is
even -> "look", odd -> "held-out" (see `part_of`). Only `<n>` counts, not the code, so a source
numbered by writer or card keeps each writer's characters in one part. Look at the "look" part
(its galleries) while working on the model or the photo path; score the "held-out" part to
report, and do not open its galleries before then.

Scores per run (or ensemble) and source, and over all sources: top-1, lenient top-1 (case and
look-alikes forgiven: benchmarks/scoring.py, shared with pen_strokes.py), top-5, the share
answered "nothing drawn", and digits-only top-1 (the best of the ten digit classes) on the digit
images. A gallery of the misses per source (the image as given, the model's 28 px view, the
answer) and the result record go to benchmarks/results/.

Usage: python benchmarks/real_photos.py [FOLDER ...] [--run NAME ...] [--ensemble]
           [--part look|held-out|all] [--tag NAME]
Folders default to every folder under data/external/photos/ (see data/README.md).
Writes benchmarks/results/real_photos-<tag>.json and real_photos-<tag>-<source>-<run>.png
(tag: the part by default).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlib.common.codes import code_to_char
from charlib.common.paths import data_dir
from charlib.inference.infer import Predictor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/scoring.py, shared
from scoring import DIGITS, LOOKALIKES, machine, score, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("look", "held-out", "all")
NAME = re.compile(r"(\d+)_(\d+)\.([A-Za-z0-9]+)")  # <ascii code>_<n>.<ext>
BATCH = 128  # images per predict_many call
GALLERY_MISSES = 60  # at most this many misses per gallery, spread evenly over the source
GALLERY_COLS = 6  # misses per gallery row (each: the image beside the model's view)


@dataclass(frozen=True)
class Photo:
    """One labelled image of a source: its file, its true character and its number."""

    path: Path
    char: str
    n: int


def parse_name(name: str) -> tuple[str, int] | None:
    """'65_3.jpg' -> ('A', 3); None for a name not of the form <ascii code>_<n>.<ext> or a code
    that is not a printable character (33-126)."""
    match = NAME.fullmatch(name)
    if not match or not 33 <= int(match[1]) <= 126:
        return None
    return chr(int(match[1])), int(match[2])


def part_of(n: int) -> str:
    """The part an image numbered n belongs to: "look" or "held-out" (sha256 of "<n>")."""
    return "look" if hashlib.sha256(str(n).encode()).digest()[0] % 2 == 0 else "held-out"


def missing_data(folder: Path, why: str) -> str:
    """The one-line message for a folder that cannot be scored."""
    return (
        f"{folder}: {why}; put a source's images there named <ascii code>_<n>.<ext> "
        "(65_3.jpg is an 'A'; see data/README.md)"
    )


def load(folder: Path, part: str) -> tuple[list[Photo], dict]:
    """A source folder's images in `part`, and what was found there."""
    folder = Path(folder)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    if not folder.is_dir():
        raise FileNotFoundError(missing_data(folder, "no such folder"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    named = [(p, parse_name(p.name)) for p in files]
    photos = [Photo(p, *label) for p, label in named if label is not None]
    if not photos:
        raise FileNotFoundError(missing_data(folder, "no file named by the convention"))
    photos.sort(key=lambda p: (ord(p.char), p.n))
    kept = [p for p in photos if part == "all" or part_of(p.n) == part]
    chars = [p.char for p in kept]
    return kept, {
        "name": folder.name,
        "folder": shown(folder),
        "files_named": len(photos),
        "files_ignored": sorted(p.name for p, label in named if label is None),
        "part": part,
        "images": len(kept),
        "digits": sum(c in DIGITS for c in chars),
        "letters": sum(c.isalpha() for c in chars),
        "classes": "".join(sorted(set(chars), key=ord)),
    }


def predict(predictor, photos: list[Photo]) -> tuple[list, list[str]]:
    """Each photo's Prediction (every class ranked; None when unreadable) as predict_many gives
    it to bytes, and the names of the unreadable files."""
    every = len(predictor.classes)
    out, unreadable = [], []
    for i in range(0, len(photos), BATCH):
        chunk = photos[i : i + BATCH]
        data = [p.path.read_bytes() for p in chunk]
        try:
            out += predictor.predict_many(data, top_k=every)
        except ValueError:  # an unreadable file stops a batch: find it, score the rest
            for photo, raw in zip(chunk, data, strict=True):
                try:
                    out.append(predictor.predict(raw, top_k=every))
                except ValueError:
                    out.append(None)
                    unreadable.append(photo.path.name)
    return out, unreadable


def metrics(ranked: list[list[str]], truth: list[str]) -> dict:
    """`scoring.score` plus the share answered "nothing drawn"."""
    out = score(ranked, truth)
    out["nothing_drawn_share"] = round(out["nothing_drawn"] / out["n"], 4) if out["n"] else None
    return out


def misses(photos: list[Photo], predictions: list) -> list[tuple[Photo, object]]:
    """The photos whose top-1 is wrong (nothing drawn included), with their predictions."""
    return [
        (photo, pred)
        for photo, pred in zip(photos, predictions, strict=True)
        if pred is not None and (pred.blank or pred[0]["char"] != photo.char)
    ]


def evenly(items: list, most: int) -> list:
    """At most `most` of the items, spread evenly over the list (first and last included)."""
    if len(items) <= most:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, most).round()]


def thumbnail(path: Path, side: int = 96) -> np.ndarray:
    """The image as given (EXIF-rotated), grayscale, at most `side` px: for the gallery."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(path.read_bytes())) as img:
        img = ImageOps.exif_transpose(img).convert("L")
        img.thumbnail((side, side))
        return np.asarray(img)


def gallery(wrong: list[tuple[Photo, object]], title: str, path: Path) -> Path:
    """A PNG of the misses: each the image as given beside the model's view, with the answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = evenly(wrong, GALLERY_MISSES)
    rows = max(1, -(-len(shown) // GALLERY_COLS))
    fig, axes = plt.subplots(
        rows, 2 * GALLERY_COLS, figsize=(1.1 * 2 * GALLERY_COLS, 1.35 * rows + 0.5), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for k, (photo, pred) in enumerate(shown):
        given, seen = axes[k // GALLERY_COLS, 2 * (k % GALLERY_COLS) : 2 * (k % GALLERY_COLS) + 2]
        given.imshow(thumbnail(photo.path), cmap="gray", vmin=0, vmax=255)
        given.set_title(photo.path.name, fontsize=6)
        if pred.blank:
            seen.set_title(f"{photo.char} → nothing", fontsize=7, color="tab:red")
            continue
        seen.imshow(pred.image, cmap="gray", vmin=0, vmax=255)
        guess = pred[0]
        seen.set_title(
            f"{photo.char} → {guess['char']} {guess['confidence']:.2f}", fontsize=7, color="tab:red"
        )
    fig.suptitle(f"{title}: {len(shown)} of {len(wrong)} misses", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def shown(path) -> str:
    """A path as the record shows it: relative to the checkout when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def safe(name: str) -> str:
    """A run name as a file-name part."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", Path(str(name)).name or str(name)).strip("_")


def run_entry(name, predictor, sources, *, out: Path, tag: str) -> dict:
    """One run (or ensemble) on every source: scores per source and overall, and the galleries."""
    params = predictor.params
    chars = {code_to_char(c) for c in predictor.classes}
    entry = {
        "run": name,
        "run_dirs": [shown(d) for d in predictor.runs],
        "data": params.get("data"),
        "params": {k: params.get(k) for k in ("recipe", "stem", "img_size", "epochs")},
        "device": str(predictor.device),
        "classes": len(predictor.classes),
        "per_source": {},
    }
    all_ranked, all_truth, seconds = [], [], 0.0
    for photos, source in sources:
        start = time.perf_counter()
        predictions, unreadable = predict(predictor, photos)
        seconds += time.perf_counter() - start
        read = [(p, q) for p, q in zip(photos, predictions, strict=True) if q is not None]
        ranked = [[g["char"] for g in q] for _, q in read]
        truth = [p.char for p, _ in read]
        wrong = misses(photos, predictions)
        picture = out / f"real_photos-{tag}-{source['name']}-{safe(name)}.png"
        entry["per_source"][source["name"]] = {
            **metrics(ranked, truth),
            "unreadable": unreadable,
            "classes_missing_from_run": "".join(c for c in source["classes"] if c not in chars),
            "misses": len(wrong),
            "gallery": None,
        }
        if wrong:
            title = f"{source['name']} ({source['part']}), {name}"
            entry["per_source"][source["name"]]["gallery"] = shown(gallery(wrong, title, picture))
        all_ranked += ranked
        all_truth += truth
    entry["overall"] = metrics(all_ranked, all_truth)
    entry["seconds"] = round(seconds, 2)
    entry["ms_per_image"] = round(1000 * seconds / max(len(all_truth), 1), 2)
    return entry


def benchmark(
    folders,
    runs,
    *,
    part: str = "look",
    ensemble: bool = False,
    device: str = "auto",
    out: Path,
    tag: str = "",
) -> dict:
    """Every run (or their ensemble) on every source folder -> the result record."""
    sources = [load(folder, part) for folder in folders]
    if ensemble:
        named = [("+".join(str(r) for r in runs), Predictor.from_runs(runs, device=device))]
    else:
        named = [(r, Predictor.from_run(r, device=device)) for r in runs]
    return {
        "benchmark": "real_photos",
        "part": part,
        "split": "sha256('<n>') first byte even: look, odd: held-out",
        "sources": [source for _, source in sources],
        "path": "file bytes -> Predictor.predict_many (preprocess.model_view)",
        "lookalikes": list(LOOKALIKES),
        "machine": machine(),
        "runs": [run_entry(n, p, sources, out=Path(out), tag=tag or part) for n, p in named],
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table(result: dict) -> str:
    """The printout: per run, a row per source and one over all of them."""
    lines = [
        f"real photos and scans, part {result['part']}: "
        + ", ".join(f"{s['name']} {s['images']:,}" for s in result["sources"]),
        f"{'run / source':<28} {'n':>6} {'top-1':>6} {'lenient':>7} {'top-5':>6} "
        f"{'blank':>6} {'digits':>6}",
    ]
    for r in result["runs"]:
        rows = [*r["per_source"].items(), ("overall", r["overall"])]
        lines.append(f"{str(r['run'])[-28:]}  (trained on {r['data']})")
        for name, m in rows:
            lines.append(
                f"  {name[-26:]:<26} {m['n']:>6} {pct(m['top1']):>6} {pct(m['top1_lenient']):>7} "
                f"{pct(m['top5']):>6} {pct(m['nothing_drawn_share']):>6} "
                f"{pct(m['digits_only_top1']):>6}"
            )
    lines.append("blank: share answered 'nothing drawn'; digits: digits-only top-1 on digit images")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders", nargs="*", help="source folders (default: data/external/photos/*)"
    )
    parser.add_argument("--run", action="append", help="run name or folder (repeatable)")
    parser.add_argument("--ensemble", action="store_true", help="the --run names as one ensemble")
    parser.add_argument("--part", default="look", choices=PARTS)
    parser.add_argument("--tag", default="", help="result file suffix (default: the part)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    base = data_dir() / "external" / "photos"
    folders = [Path(f) for f in args.folders] or sorted(p for p in base.glob("*") if p.is_dir())
    runs = args.run or ["latest"]
    try:
        if not folders:
            raise FileNotFoundError(missing_data(base, "no source folders"))
        if args.ensemble and len(runs) < 2:
            raise ValueError("--ensemble needs two or more --run names")
        result = benchmark(
            folders,
            runs,
            part=args.part,
            ensemble=args.ensemble,
            device=args.device,
            out=args.out,
            tag=args.tag,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"real_photos: {e}", file=sys.stderr)
        return 2
    write_result(
        Path(args.out) / f"real_photos-{args.tag or args.part}.json", result, table(result)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
