"""The drawing pad on real pen strokes: characters people drew with a stylus on a tablet.

Each drawing's pen coordinates are put on the pad's canvas (`handwriting.as_strokes`: centred,
aspect ratio kept, the glyph's longer side 70% of the 280 px canvas) and go the pad's own way:
`Strokes` -> `Predictor.predict_many` (rasterised by `strokes.rasterize`, then
`preprocess.model_view`), exactly as a drawing sent by the notebook pad or the served page.

Data (never in git; see data/README.md): the UJI Pen Characters, UCI, CC BY 4.0, in either form
- v1 `UJIpenchars-w01`..`w11` (UNIPEN-like: .SEGMENT / .PEN_DOWN / "x y" lines / .PEN_UP):
  11 writers x 62 characters x 2, Toshiba Tablet PC;
- v2 `ujipenchars2.txt` (WORD / NUMSTROKES / POINTS lines): 60 writers, 97 characters x 2.
Every file in the --data folder is read, its format told by its lines (one of the two forms
only: v2 holds the v1 drawings too). Drawings of the 62 letters and digits are scored, with every
class of the model open. Scores per run, overall and per character: top-1, top-1 lenient
(`same`: case and `LOOKALIKES` forgiven), top-5, and digits-only top-1 (the best of the ten
digit classes) on the digit drawings; the scoring lives in benchmarks/scoring.py, shared with
real_photos.py.

Usage: python benchmarks/pen_strokes.py [--run NAME ...] [--data FOLDER] [--tag NAME]
Writes benchmarks/results/pen_strokes-<tag>.json (tag: the data folder's name by default).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlib.common.codes import code_to_char
from charlib.common.paths import data_dir
from charlib.data import handwriting
from charlib.inference.infer import Predictor
from charlib.vision.strokes import CANVAS_SIZE, PEN, Strokes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/scoring.py, shared
from scoring import DIGITS, LOOKALIKES, machine, same, score, write_result  # noqa: E402, F401

ROOT = Path(__file__).resolve().parents[1]
CHARS = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # the drawings scored
FILL = 0.7  # the glyph's longer side over the canvas side, as `handwriting.as_strokes` draws
BATCH = 256  # drawings per predict_many call
SOURCES = {  # format -> the dataset it comes from
    "ujipenchars": {
        "name": "UJI Pen Characters (v1): 11 writers, 62 characters, 2 samples each",
        "origin": "UCI Machine Learning Repository, 'UJI Pen Characters' (Llorens, Prat, Marzal, "
        "Vilar, Universitat Jaume I, 2007); the copy first used: github.com/Carsanpo/REM_wavelets, "
        "uji+pen+characters.zip at 588bbbe521bf9e86ced1259dbf2d04cc1ebe0c19",
        "licence": "CC BY 4.0 (UCI)",
    },
    "ujipenchars2": {
        "name": "UJI Pen Characters v2: 60 writers, 97 characters, 2 samples each",
        "origin": "UCI Machine Learning Repository, 'UJI Pen Characters (Version 2)' (Prat, "
        "Castro, Llorens, Marzal, Vilar, 2008), ujipenchars2.txt",
        "licence": "CC BY 4.0 (UCI)",
    },
}


@dataclass
class Drawing:
    """One character as drawn: pen strokes in tablet units (y down), who drew it, and where."""

    char: str
    writer: str
    strokes: list[list[tuple[float, float]]]
    origin: str  # "file:line" of its first line


def read_text(path: Path) -> str:
    """A data file's text: UTF-8, else Latin-1 (the v2 file's accented labels)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_unipen(text: str, *, writer: str, name: str = "") -> list[Drawing]:
    """UJI v1 (UNIPEN-like) text -> drawings: `.SEGMENT CHARACTER n ? "a"` starts one,
    `.PEN_DOWN` a stroke, each "x y" line is a point, `.PEN_UP` ends the stroke."""
    out, stroke = [], None
    for n, line in enumerate(text.splitlines(), 1):
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if word == ".SEGMENT":
            label = re.fullmatch(r'\.SEGMENT\s+\S+\s+\S+\s+\S+\s+"(.+)"\s*', line)
            if not label:
                raise ValueError(f"{name}:{n}: unreadable .SEGMENT line {line!r}")
            out.append(Drawing(label[1], writer, [], f"{name}:{n}"))
        elif word == ".PEN_DOWN":
            if not out or stroke is not None:
                raise ValueError(f"{name}:{n}: .PEN_DOWN outside a character or a stroke open")
            stroke = []
            out[-1].strokes.append(stroke)
        elif word == ".PEN_UP":
            stroke = None
        elif word and not word.startswith("."):
            xy = line.split()
            if stroke is None or len(xy) != 2 or not all(re.fullmatch(r"-?\d+", v) for v in xy):
                raise ValueError(f"{name}:{n}: expected 'x y' inside a stroke, got {line!r}")
            stroke.append((float(xy[0]), float(xy[1])))
    return out


def parse_uji2(text: str, *, name: str = "") -> list[Drawing]:
    """UJI v2 text -> drawings: `WORD a trn_UJI_W01-01`, `NUMSTROKES n`, then n lines
    `POINTS k # x1 y1 ... xk yk`; `//` lines are comments."""
    out, left = [], 0
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("//"):
            continue
        if parts[0] == "WORD" and len(parts) == 3 and not left:
            writer = parts[2].rsplit("-", 1)[0]  # trn_UJI_W01-01: writer trn_UJI_W01, session 01
            out.append(Drawing(parts[1], writer, [], f"{name}:{n}"))
        elif parts[0] == "NUMSTROKES" and len(parts) == 2 and parts[1].isdigit() and out:
            left = int(parts[1])
        elif parts[0] == "POINTS" and left and len(parts) > 1 and parts[1].isdigit():
            xy = [float(v) for v in parts[3:] if re.fullmatch(r"-?\d+", v)]
            if parts[2:3] != ["#"] or len(xy) != len(parts) - 3 or len(xy) != 2 * int(parts[1]):
                raise ValueError(f"{name}:{n}: POINTS {parts[1]} do not match {line[:60]!r}")
            out[-1].strokes.append(list(zip(xy[::2], xy[1::2], strict=True)))
            left -= 1
        else:
            raise ValueError(f"{name}:{n}: unexpected line {line[:60]!r}")
    if left:
        raise ValueError(f"{name}: ends {left} POINTS line(s) short of NUMSTROKES")
    return out


def parse_file(path: Path) -> tuple[str | None, list[Drawing]]:
    """One file -> (its format, its drawings); (None, []) for a file in neither format."""
    text = read_text(path)
    starts = {line.split(maxsplit=1)[0] for line in text.splitlines()[:200] if line[:1].strip()}
    if ".SEGMENT" in starts or ".LEXICON" in starts:
        writer = re.sub(r"^UJIpenchars-", "", path.name)  # UJIpenchars-w01: writer w01
        return "ujipenchars", parse_unipen(text, writer=writer, name=path.name)
    if "WORD" in starts:
        return "ujipenchars2", parse_uji2(text, name=path.name)
    return None, []


def missing_data(folder: Path) -> str:
    """The one-line message for a --data folder with no pen data in it."""
    return (
        f"no pen-stroke data in {folder}: put the UJI Pen Characters files there "
        "(UJIpenchars-w01..w11 or ujipenchars2.txt, UCI, CC BY 4.0; see data/README.md) "
        "or pass --data FOLDER"
    )


def load(folder: Path) -> tuple[list[Drawing], dict]:
    """Every drawing of the 62 letters and digits in the folder's files, and what was read."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    found, formats, skipped = [], set(), []
    for path in files:
        kind, drawings = parse_file(path)
        if kind is None:
            skipped.append(path.name)
            continue
        formats.add(kind)
        found += drawings
    if not found:
        raise FileNotFoundError(missing_data(folder))
    if len(formats) > 1:  # v2 holds every v1 drawing: together they would count them twice
        raise ValueError(f"{folder} holds both UJI v1 and v2 files; keep one of them there")
    scored = [d.char in CHARS and any(d.strokes) for d in found]
    kept = [d for d, keep in zip(found, scored, strict=True) if keep]
    report = {
        "folder": str(folder),
        "formats": sorted(formats),
        "datasets": [SOURCES[f] for f in sorted(formats)],
        "files_read": len(files) - len(skipped),
        "files_skipped": skipped,
        "drawings_in_files": len(found),
        "drawings_scored": len(kept),
        "left_out": dict(Counter(d.char for d, k in zip(found, scored, strict=True) if not k)),
        "writers": len({d.writer for d in kept}),
        "classes": len({d.char for d in kept}),
    }
    return kept, report


def on_pad(drawing: Drawing) -> Strokes:
    """A tablet drawing on the pad's canvas (280 px, default pen), as `as_strokes` places one."""
    strokes = [np.asarray(s, dtype=np.float64) for s in drawing.strokes if s]
    return handwriting.as_strokes(strokes, size=CANVAS_SIZE, fill=FILL)


def guesses(predictor, drawings: list[Drawing]) -> list[list[str]]:
    """Every class's character for each drawing, best first (the pad's path, in batches)."""
    out = []
    everything = len(predictor.classes)
    for i in range(0, len(drawings), BATCH):
        pads = [on_pad(d) for d in drawings[i : i + BATCH]]
        out += [[g["char"] for g in p] for p in predictor.predict_many(pads, top_k=everything)]
    return out


def per_class(ranked: list[list[str]], truth: list[str]) -> dict:
    """For each character: n, top-1, lenient top-1, top-5 and its most frequent wrong guess."""
    out = {}
    for char in sorted(set(truth), key=CHARS.index):
        rows = [i for i, t in enumerate(truth) if t == char]
        mine = score([ranked[i] for i in rows], [char] * len(rows))
        wrong = Counter(ranked[i][0] for i in rows if ranked[i] and ranked[i][0] != char)
        out[char] = {k: mine[k] for k in ("n", "top1", "top1_lenient", "top5")}
        out[char]["most_wrong"] = wrong.most_common(1)[0][0] if wrong else None
    return out


def evaluate(predictor, drawings: list[Drawing]) -> dict:
    """One run on every drawing: overall and per-character scores, timing and class coverage."""
    start = time.perf_counter()
    ranked = guesses(predictor, drawings)
    seconds = time.perf_counter() - start
    truth = [d.char for d in drawings]
    chars = {code_to_char(c) for c in predictor.classes}
    return {
        "classes": len(predictor.classes),
        "missing_classes": "".join(c for c in CHARS if c not in chars),
        "seconds": round(seconds, 2),
        "ms_per_drawing": round(1000 * seconds / max(len(drawings), 1), 2),
        "overall": score(ranked, truth),
        "per_class": per_class(ranked, truth),
    }


def run_entry(name: str, device: str, drawings: list[Drawing]) -> dict:
    """Load a run by name (`paths.resolve_run`) and score it; with its data source and recipe."""
    predictor = Predictor.from_run(name, device=device)
    params = predictor.params
    return {
        "run": name,
        "run_dir": str(predictor.run_dir),
        "data": params.get("data"),
        "params": {k: params.get(k) for k in ("recipe", "stem", "img_size", "epochs")},
        "device": str(predictor.device),
        **evaluate(predictor, drawings),
    }


def benchmark(runs: list[str], folder: Path, *, device: str = "auto") -> dict:
    """Every run on the folder's drawings -> the result record (what the JSON file holds)."""
    drawings, source = load(folder)
    return {
        "benchmark": "pen_strokes",
        "source": source,
        "pad": {"canvas": CANVAS_SIZE, "pen": PEN, "fill": FILL, "path": "Strokes -> predict_many"},
        "lookalikes": list(LOOKALIKES),
        "machine": machine(),
        "runs": [run_entry(name, device, drawings) for name in runs],
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table(result: dict) -> str:
    """The compact printout: one row per run, then each run's five weakest characters."""
    src = result["source"]
    head = (
        f"{src['drawings_scored']:,} drawings, {src['writers']} writers, {src['classes']} "
        f"characters ({', '.join(src['formats'])}; {src['folder']})"
    )
    cols = f"{'run':<24} {'top-1':>6} {'lenient':>7} {'top-5':>6} {'digits':>6} {'ms':>5}"
    lines = [head, cols]
    for r in result["runs"]:
        o = r["overall"]
        lines.append(
            f"{r['run'][-24:]:<24} {pct(o['top1']):>6} {pct(o['top1_lenient']):>7} "
            f"{pct(o['top5']):>6} {pct(o['digits_only_top1']):>6} {r['ms_per_drawing']:>5.1f}"
        )
    for r in result["runs"]:
        worst = sorted(r["per_class"].items(), key=lambda kv: kv[1]["top1"])[:5]
        shown = ", ".join(f"{c} {pct(v['top1'])}% (as {v['most_wrong']})" for c, v in worst)
        lines.append(f"  {r['run']} weakest: {shown}")
    lines.append("digits: digits-only top-1 on the digit drawings; ms: per drawing, batched")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", help="run name or folder (repeatable)")
    parser.add_argument("--data", default=None, help="folder (default data/external/ujipenchars)")
    parser.add_argument("--tag", default="", help="result file suffix (default: the folder name)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    folder = Path(args.data) if args.data else data_dir() / "external" / "ujipenchars"
    try:
        result = benchmark(args.run or ["latest"], folder, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        print(f"pen_strokes: {e}", file=sys.stderr)
        return 2
    write_result(
        Path(args.out) / f"pen_strokes-{args.tag or folder.name}.json", result, table(result)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
