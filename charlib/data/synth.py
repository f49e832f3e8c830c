"""The embedded default dataset: printable ASCII (33-126) plus 999, drawn offline.

Most samples are pen strokes from the Hershey single-stroke fonts, drawn as a hand draws them
(`handwriting`); the rest are outline-font glyphs made to look handwritten (stroke width,
rotation, shear, elastic distortion, position and scale jitter, blur). All are framed like
EMNIST: the ink's bounding box centred in a square with a margin. Written as
train/validation/test zips in the AlphaNum layout (dark on light, like AlphaNum), so the
ordinary loader reads it. Deterministic by seed.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from charlib.common import paths
from charlib.common.codes import IMAGE_SIZE, UNKNOWN
from charlib.common.files import atomic_write, write_json
from charlib.common.progress import bar
from charlib.data import handwriting
from charlib.data.sources import SPLITS
from charlib.vision import preprocess

VERSION = 4
CODES = (*range(33, 127), UNKNOWN)
SIZE = IMAGE_SIZE  # px, EMNIST's size: the real handwriting we aim to recognise
CANVAS = 96  # px, working resolution before the glyph is framed and shrunk
HAND = 0.75  # share of samples drawn from Hershey pen strokes (`handwriting`), the rest from fonts
# Training images of each digit, relative to other characters: shapes shared by a digit and
# letters (0/O/o, 1/l/I, 5/S/s, 2/z/Z, 9/q/g, 6/b) lean to the digit, as numbers are what a pad
# is most often asked to read (benchmarks/transfer.py, README: digits 54.7% -> 64.6% on EMNIST).
DIGITS = 3.0
MONOLINE = 0.7  # share of font glyphs redrawn with a round pen along their centre line
# Images per class and split; 'synth' is the default of `make run`, 'synth-small' for smoke runs.
PRESETS = {
    "synth": {"train": 300, "validation": 50, "test": 50},
    "synth-small": {"train": 24, "validation": 6, "test": 6},
}
# Fonts whose ASCII code points hold symbols or placeholder boxes, not letters.
_BAD_FONTS = re.compile(r"LastResort|cmsy|cmex|cmmi|STIXSiz|STIXNonUni|Display", re.IGNORECASE)
# TeX's Computer Modern fonts keep the old TeX layout for punctuation ('\\' holds a quote mark,
# '<' an inverted '!'): use them for letters and digits only.
_ALNUM_ONLY = re.compile(r"^cm", re.IGNORECASE)
ALNUM = frozenset(c for c in range(33, 127) if chr(c).isalnum())
_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)


@lru_cache(maxsize=1)
def fonts() -> tuple[str, ...]:
    """Font files that cover every printable ASCII character: matplotlib's, then the system's."""
    import matplotlib
    from fontTools.ttLib import TTFont

    roots = [Path(matplotlib.get_data_path()) / "fonts" / "ttf"]
    roots += [Path(d).expanduser() for d in _FONT_DIRS]
    found, seen = [], set()
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.suffix.lower() not in (".ttf", ".otf") or path.name in seen:
                continue
            if _BAD_FONTS.search(path.name):
                continue
            try:
                cmap = TTFont(path, lazy=True, fontNumber=0).getBestCmap() or {}
            except Exception:  # an unreadable font file is simply not used
                continue
            if all(c in cmap for c in range(33, 127)):
                found.append(str(path))
                seen.add(path.name)
    if not found:
        raise RuntimeError("no font covering ASCII 33-126 found; reinstall matplotlib")
    return tuple(found)


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=4)
def _punctuation_fonts(font_files: tuple[str, ...]) -> tuple[str, ...]:
    """The fonts whose punctuation is ASCII's (not TeX's old layout)."""
    return tuple(f for f in font_files if not _ALNUM_ONLY.match(Path(f).name))


def render(
    code: int, rng: np.random.Generator, font_files: tuple[str, ...], hand: float = HAND
) -> np.ndarray:
    """One sample: uint8 SIZE×SIZE, white strokes on black; pen strokes with chance `hand`."""
    if code == UNKNOWN:
        return _noise(rng)
    if rng.random() < hand:
        return _frame(handwriting.ink(handwriting.drawing(code, rng), rng, canvas=CANVAS), rng)
    img = Image.new("L", (CANVAS, CANVAS), 0)
    usable = font_files if code in ALNUM else _punctuation_fonts(font_files)
    font = _font(usable[rng.integers(len(usable))], 48)
    mono = rng.random() < MONOLINE
    stroke = 0 if mono else int(rng.choice([0, 0, 1, 2, 3]))  # a monoline pen sets its own width
    ImageDraw.Draw(img).text(
        (CANVAS / 2, CANVAS / 2),
        chr(code),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    img = img.transform(img.size, Image.Transform.AFFINE, _affine(rng), Image.Resampling.BILINEAR)
    img = img.transform(img.size, Image.Transform.MESH, _mesh(rng), Image.Resampling.BILINEAR)
    if mono:
        img = _monoline(img, rng)
    elif rng.random() < 0.25:
        img = img.filter(ImageFilter.MinFilter(3))  # thinner pen
    return _frame(np.asarray(img), rng)


def _monoline(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Redraw a glyph with a round pen of one width along its centre line, as a hand would."""
    half = CANVAS // 2  # thinning at half resolution is 4× cheaper; the pen hides the steps
    small = img.resize((half, half), Image.Resampling.BILINEAR)
    skeleton = _thin(np.asarray(small) > 100)
    line = Image.fromarray(skeleton.astype(np.uint8) * 255)
    line = line.resize(img.size, Image.Resampling.NEAREST)
    sigma = rng.uniform(0.9, 1.7)  # pen in CANVAS pixels: 3-5 px wide, 1.5-2.5 px once framed
    blurred = np.asarray(line.filter(ImageFilter.GaussianBlur(sigma)), np.float32)
    # A blurred 2-pixel line peaks near 2·255/(sqrt(2π)·σ); amplifying and clipping it gives a
    # solid stroke about 3σ wide with thin soft edges.
    gain = 1.5 * np.sqrt(2 * np.pi) * sigma
    pen = np.clip(blurred * gain, 0, 255).astype(np.uint8)
    # A glyph too bold for its holes thins to a dot or a stub: keep the font's drawing then.
    return Image.fromarray(pen) if _extent(pen) > 0.7 * _extent(np.asarray(img)) else img


def _ink_box(arr: np.ndarray) -> np.ndarray | None:
    """`arr` cropped to its ink (a single ink pixel counts); None when there is no ink."""
    box = preprocess.ink_box(arr, min_pixels=1)
    return None if box is None else arr[box[0] : box[1], box[2] : box[3]]


def _extent(arr: np.ndarray) -> int:
    """The longer side of the ink's bounding box, in pixels."""
    crop = _ink_box(arr)
    return max(crop.shape) if crop is not None else 0


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to one-pixel-wide centre lines."""
    img = mask.copy()
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = np.pad(img, 1)
            n = [
                p[:-2, 1:-1],
                p[:-2, 2:],
                p[1:-1, 2:],
                p[2:, 2:],  # P2..P5: N, NE, E, SE
                p[2:, 1:-1],
                p[2:, :-2],
                p[1:-1, :-2],
                p[:-2, :-2],
            ]  # P6..P9: S, SW, W, NW
            count = sum(x.astype(np.uint8) for x in n)
            turns = sum((~n[i] & n[(i + 1) % 8]).astype(np.uint8) for i in range(8))
            if step == 0:
                keep = (n[0] & n[2] & n[4]) | (n[2] & n[4] & n[6])
            else:
                keep = (n[0] & n[2] & n[6]) | (n[0] & n[4] & n[6])
            drop = img & (count >= 2) & (count <= 6) & (turns == 1) & ~keep
            if drop.any():
                img &= ~drop
                changed = True
    return img


def _affine(rng: np.random.Generator) -> tuple[float, ...]:
    """Inverse affine map (output -> input) about the canvas centre: rotation, shear, stretch."""
    angle = np.deg2rad(rng.uniform(-12, 12))
    # Handwriting leans right ('/'): with y pointing down that is a negative shear.
    shear = rng.uniform(-0.45, 0.15)
    # Hands write rounder, wider digits and letters than most fonts draw them.
    sx, sy = np.exp(rng.normal([0.1, 0.0], [0.15, 0.1]))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = np.linalg.inv(rot @ np.array([[1, shear], [0, 1]]) @ np.diag([sx, sy]))
    c = CANVAS / 2
    offset = np.array([c, c]) - m @ np.array([c, c])
    return (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1])


def _mesh(rng: np.random.Generator, cells: int = 4) -> list:
    """Elastic distortion: a grid whose source vertices are jittered (shared between cells)."""
    step = CANVAS / cells
    amp = rng.uniform(0, 5)
    grid = (
        np.stack(np.meshgrid(np.arange(cells + 1), np.arange(cells + 1), indexing="xy"), -1) * step
    )
    src = grid + rng.normal(0, amp / 2, size=grid.shape)
    mesh = []
    for j in range(cells):
        for i in range(cells):
            box = (int(i * step), int(j * step), int((i + 1) * step), int((j + 1) * step))
            quad = (*src[j, i], *src[j + 1, i], *src[j + 1, i + 1], *src[j, i + 1])
            mesh.append((box, tuple(float(v) for v in quad)))
    return mesh


def _frame(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop to the ink, centre it in a jittered square frame, shrink, blur, stretch contrast."""
    crop = _ink_box(arr)
    if crop is None:
        return np.zeros((SIZE, SIZE), np.uint8)
    h, w = crop.shape
    box = rng.uniform(18, 25)  # px the longer side takes in the SIZE frame (EMNIST: about 24)
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS)
    out = Image.new("L", (SIZE, SIZE), 0)
    dx, dy = rng.integers(-2, 3, size=2)
    out.paste(small, ((SIZE - nw) // 2 + int(dx), (SIZE - nh) // 2 + int(dy)))
    # Thin fonts fade when shrunk; real pen strokes (and EMNIST's) reach full white.
    return preprocess.stretch(np.asarray(out.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))))


def _noise(rng: np.random.Generator) -> np.ndarray:
    """The 'unknown' class, as in AlphaNum: light pixels scattered at random."""
    out = np.zeros((SIZE, SIZE), np.float64)
    n = rng.integers(3, 60)
    ys, xs = rng.integers(0, SIZE, size=(2, n))
    out[ys, xs] = np.clip(rng.normal(180, 60, size=n), 0, 255)
    img = Image.fromarray(out.astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0, 0.8))
    )
    return np.asarray(img)


def _class_images(task: tuple) -> list[bytes]:
    """PNG bytes of every sample of one (split, class), dark on light like AlphaNum."""
    seed, split_index, code, count, font_files, hand = task
    rng = np.random.default_rng([seed, split_index, code])
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(255 - render(code, rng, font_files, hand)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def generate(
    dest: str | os.PathLike,
    *,
    counts: dict[str, int],
    seed: int = 0,
    hand: float = HAND,
    digits: float = DIGITS,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write dest/{train,validation,test}.zip and dest/synth.json; returns dest. `hand` is the
    share of samples drawn from pen strokes (the rest from outline fonts); the training split
    holds `digits` times as many images of each digit as of other characters."""
    if not 0 <= hand <= 1:
        raise ValueError(f"hand must be a share between 0 and 1, got {hand!r}")
    if not 0 < digits <= 10:
        raise ValueError(f"digits must be a weight above 0 and at most 10, got {digits!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    font_files = fonts()
    tasks = [
        (
            seed,
            i,
            code,
            _count(counts[split], code, digits if split == "train" else 1),
            font_files,
            hand,
        )
        for i, split in enumerate(SPLITS)
        for code in CODES
    ]
    workers = workers or min(4, os.cpu_count() or 1)
    done = bar(total=len(tasks), enabled=progress, desc="generating synthetic data", unit="class")
    with ProcessPoolExecutor(workers) as pool:
        results = iter(pool.map(_class_images, tasks, chunksize=4))
        for split in SPLITS:
            _write_zip(dest / f"{split}.zip", ((code, next(results), done) for code in CODES))
    done.close()
    manifest = _manifest(counts, seed, font_files, hand, digits)
    write_json(dest / "synth.json", manifest)
    return dest


def _write_zip(path: Path, classes) -> None:
    """Atomic, byte-reproducible zip: fixed timestamps, sorted members, stored PNGs."""

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for code, images, done in classes:
                for i, png in enumerate(images):
                    zf.writestr(zipfile.ZipInfo(f"{code}/{i:05d}.png", (1980, 1, 1, 0, 0, 0)), png)
                done.update()

    atomic_write(path, write)


def _count(count: int, code: int, digits: float) -> int:
    """Images of class `code` in a split of `count` per class, digits weighted by `digits`."""
    return round(count * digits) if 48 <= code <= 57 else count


def _manifest(counts: dict, seed: int, font_files: tuple, hand: float, digits: float) -> dict:
    return {
        "version": VERSION,
        "seed": seed,
        "size": SIZE,
        "counts": counts,
        "codes": list(CODES),
        "fonts": [Path(f).name for f in font_files],
        "hand": hand,
        "digits": digits,
        "hershey_fonts": list(handwriting.FONTS),
    }


def ensure(preset: str = "synth", *, seed: int = 0, progress: bool = True) -> Path:
    """The preset's folder under data/, generated when missing or made with other settings."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; expected {' or '.join(PRESETS)}")
    dest = paths.data_dir() / preset
    counts = PRESETS[preset]
    try:
        found = json.loads((dest / "synth.json").read_text())
    except (OSError, ValueError):
        found = None
    wanted = _manifest(counts, seed, fonts(), HAND, DIGITS)
    zips_there = all((dest / f"{s}.zip").is_file() for s in SPLITS)
    if found != wanted or not zips_there:
        generate(dest, counts=counts, seed=seed, progress=progress)
    return dest
