"""Build the real-photo benchmark's folders (data/external/photos/) from the public sources.

    git clone https://github.com/spaghetti-enjoyer/SSE-letters      /tmp/SSE-letters
    git clone https://github.com/skyatmoon/CHoiCe-Dataset           /tmp/CHoiCe-Dataset
    git clone https://github.com/SageLabTW/auto-grading             /tmp/auto-grading
    git clone https://github.com/kensanata/numbers                  /tmp/numbers
    python benchmarks/assemble_photos.py --sse-letters /tmp/SSE-letters \
        --choice /tmp/CHoiCe-Dataset --nsysu /tmp/auto-grading --numbers /tmp/numbers

- `vu-charwizard/`: each card photo (`raw-data/dataset-2024|2025/frames/frame_<card>.png`) holds
  15 capitals in a printed 5 × 3 grid, row by row `A B C D I` / `K O L M R` / `E H X W T`. Each
  cell is cut as an equal fifth × third of the frame with TRIM of the cell's side taken off every
  side (the printed grid lines), and kept only where the repository keeps its own crop of that
  letter for that card (`<L>_set/<L>_<card>.png` in 2024, `<L>/<L>_<card>.png` in 2025), so a
  cell its authors dropped is dropped here too. n = card (2024) or 1000 + card (2025).
- `choice/`: `V0.3/data/<class>/<char> (<k>).png`, classes through `V0.3/label.txt`, each file's
  own name checked against its class; copied byte for byte; n = code × 1000 + k.
- `nsysu-digits/`: `nsysu-digits/<8 digits>.png` of SageLabTW/auto-grading, each labelled by its
  row of `nsysu-digits/nsysu-digits.csv` (file, digit, quiz); copied byte for byte; n = the
  file's number (`00000042.png` -> n = 42).
- `numbers-digits/`: kensanata/numbers (public domain): digits written by hand into the cells of a
  printed 20 × 30 grid, scanned or photographed, cut into cells by the authors (the cell's
  border often left at the crop's edge); `<writer>_<country><age><sex>/<digit>/number-<k>.png`
  (k < 1000), labelled by the digit folder; `UNCATEGORIZED/` (not labelled) is left out; copied
  byte for byte; n = writer × 1000 + k.

Each folder gets a provenance.csv (file, source path). An existing folder is never overwritten:
the script stops with one line; pass --out to build elsewhere. A folder is built under
`<name>.partial` and renamed when whole, so a stopped build leaves no half folder behind.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GRID = ("ABCDI", "KOLMR", "EHXWT")  # the cards' printed rows
TRIM = 0.06  # of the cell's side, on every side: leaves the printed grid lines out
YEARS = {"dataset-2024": (0, "{letter}_set"), "dataset-2025": (1000, "{letter}")}


def cards(repo: Path):
    """(n, frame path, kept letters) for every card frame in the SSE-letters checkout."""
    for year, (offset, crops) in YEARS.items():
        base = repo / "raw-data" / year
        frames = sorted(base.glob("frames/frame_*.png"), key=lambda p: int(p.stem.split("_")[1]))
        for frame in frames:
            card = int(frame.stem.split("_")[1])
            kept = {
                letter
                for row in GRID
                for letter in row
                if (base / crops.format(letter=letter) / f"{letter}_{card}.png").is_file()
            }
            yield offset + card, frame, kept


def cells(img: Image.Image):
    """(letter, cell image) for the 15 cells of one card, the grid lines trimmed away."""
    w, h = img.size
    cw, ch = w / len(GRID[0]), h / len(GRID)
    for r, row in enumerate(GRID):
        for c, letter in enumerate(row):
            dx, dy = TRIM * cw, TRIM * ch
            box = (c * cw + dx, r * ch + dy, (c + 1) * cw - dx, (r + 1) * ch - dy)
            yield letter, img.crop(tuple(round(v) for v in box))


def build_charwizard(repo: Path, out: Path) -> int:
    out.mkdir(parents=True)
    rows = []
    for n, frame, kept in cards(repo):
        with Image.open(frame) as img:
            img.load()
            for letter, cell in cells(img):
                if letter in kept:
                    name = f"{ord(letter)}_{n}.png"
                    cell.save(out / name)
                    rows.append((name, frame.relative_to(repo).as_posix() + f"#cell-{letter}"))
    write_provenance(out, rows)
    return len(rows)


def build_choice(repo: Path, out: Path) -> int:
    labels = (repo / "V0.3" / "label.txt").read_text().split()
    own = re.compile(r"(.) \((\d+)\)\.png")
    out.mkdir(parents=True)
    rows = []
    for k, char in enumerate(labels):
        for path in sorted((repo / "V0.3" / "data" / str(k)).glob("*.png")):
            match = own.fullmatch(path.name)
            if not match or match[1] != char:
                sys.exit(f"{path}: its name does not match its class {char!r}; check the checkout")
            name = f"{ord(char)}_{ord(char) * 1000 + int(match[2])}.png"
            (out / name).write_bytes(path.read_bytes())
            rows.append((name, path.relative_to(repo).as_posix()))
    write_provenance(out, rows)
    return len(rows)


def build_nsysu(repo: Path, out: Path) -> int:
    base = repo / "nsysu-digits"
    own = re.compile(r"\d{8}\.png")
    with open(base / "nsysu-digits.csv", newline="") as f:
        labels = list(csv.reader(f))
    out.mkdir(parents=True)
    rows = []
    for file, label, quiz in labels:
        digit = float(label)
        path = base / file
        if not own.fullmatch(file) or not path.is_file() or digit not in range(10):
            sys.exit(f"{path}: ({label}, {quiz}) is no digit image and label; check the checkout")
        name = f"{ord(str(int(digit)))}_{int(path.stem)}.png"
        (out / name).write_bytes(path.read_bytes())
        rows.append((name, path.relative_to(repo).as_posix() + f"#quiz-{quiz}"))
    write_provenance(out, rows)
    return len(rows)


def build_numbers(repo: Path, out: Path) -> int:
    writer = re.compile(r"(\d{4})_[A-Z]{2}[0-9X][A-Z]")
    own = re.compile(r"number-(\d{1,3})\.[A-Za-z]+")
    out.mkdir(parents=True)
    rows = []
    for folder in sorted(p for p in repo.iterdir() if writer.fullmatch(p.name)):
        for digit in range(10):
            for path in sorted((folder / str(digit)).glob("number-*")):
                match = own.fullmatch(path.name)
                if not match:
                    sys.exit(f"{path}: not a number-<k> image; check the checkout")
                n = int(writer.fullmatch(folder.name)[1]) * 1000 + int(match[1])
                name = f"{ord(str(digit))}_{n}{path.suffix.lower()}"
                (out / name).write_bytes(path.read_bytes())
                rows.append((name, path.relative_to(repo).as_posix()))
    write_provenance(out, rows)
    return len(rows)


def write_provenance(out: Path, rows: list[tuple[str, str]]) -> None:
    with open(out / "provenance.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "source"])
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sse-letters", type=Path, help="a checkout of spaghetti-enjoyer/SSE-letters")
    ap.add_argument("--choice", type=Path, help="a checkout of skyatmoon/CHoiCe-Dataset")
    ap.add_argument("--nsysu", type=Path, help="a checkout of SageLabTW/auto-grading")
    ap.add_argument("--numbers", type=Path, help="a checkout of kensanata/numbers")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "external" / "photos")
    args = ap.parse_args(argv)
    jobs = [
        ("vu-charwizard", args.sse_letters, "raw-data", build_charwizard),
        ("choice", args.choice, "V0.3/label.txt", build_choice),
        ("nsysu-digits", args.nsysu, "nsysu-digits/nsysu-digits.csv", build_nsysu),
        ("numbers-digits", args.numbers, "tools/create-svg.el", build_numbers),
    ]
    if not any(repo for _, repo, _, _ in jobs):
        ap.error(
            "give --sse-letters, --choice, --nsysu and/or --numbers (checkouts of the sources)"
        )
    for name, repo, marker, build in jobs:
        if repo is None:
            continue
        if not (repo / marker).exists():
            sys.exit(f"{repo}: no {marker} here; pass a checkout of the {name} source")
        target = args.out / name
        if target.exists():
            sys.exit(f"{target} already exists; move it away or pass --out to build elsewhere")
        partial = target.with_name(target.name + ".partial")  # renamed once whole
        shutil.rmtree(partial, ignore_errors=True)
        count = build(repo, partial)
        partial.rename(target)
        print(f"{name}: {count:,} images -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
