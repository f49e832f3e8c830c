"""One path from anything a user hands the model (file, PIL image, array, strokes) to its input.

Every input becomes an 8-bit white-on-black image (`to_image`). A small crop on a plain
background (a dataset PNG, a scan already cut to one character) is used as it is; anything
else - the pad's strokes once rasterised, a photo, a scan, a large drawing - goes through
`ink.find`, which keeps the ink alone at the stroke width the run trained on (see
charlib/vision/ink.py, step by step). A crop like the training images (`is_clean`: its ink reaches
near full white, as EMNIST's and the synthetic images' does) is then fitted to the size as it
is; anything else goes to `canonical`, which crops the ink, centres it in a square whose side
the ink fills as much as it filled the training images (`ink_fill`, measured when the run
trained), resizes it to the training images' size and stretches its ink to full white (a faint
scan cut to 28 px reads as the training images do); `augment.eval_input` - the transform
training evaluates with - finishes.
A drawing made on a computer (`is_digital`: a saved pad drawing, a paint program's PNG) skips
`ink.find`, as the pad's strokes do: it has no paper, light or ruling to take away.
The ink box and the contrast stretch here are also how `synth` frames its glyphs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from charlib.common.codes import IMAGE_SIZE, INK_LEVEL
from charlib.vision import images, ink
from charlib.vision.strokes import Strokes, rasterize

# The ink's longer side over the image side, when a run does not record its own (EMNIST's frame).
DEFAULT_FILL = 24 / IMAGE_SIZE
# A crop (used as it is) is small, like the training images, with at least half of it (or its
# whole frame) at or under CLEAN_LEVEL (after polarity); anything else goes through `ink.find`.
# A crop is clean (fitted as it is) when its ink reaches CLEAN_PEAK, as the training images'
# does (EMNIST's and the synthetic ones reach full white); a dim one (a faint scan cut to 28 px)
# is `canonical`'s.
CLEAN_LEVEL, CLEAN_SIDE, CLEAN_PEAK = 8, 64, 224


def model_view(
    x, *, size: int, fill: float = DEFAULT_FILL, stroke_width: float = ink.DEFAULT_WIDTH
) -> np.ndarray | None:
    """Any input -> the uint8 size×size image a model sees; None when nothing is drawn.

    A training-like image takes the dataset's own path (fitted to the size as it is, so a
    dataset's files and its tensors give the same answers); anything else is cleaned by
    `ink.find` and framed by `canonical`.
    """
    img = to_image(x, stroke_width=stroke_width)
    if is_clean(img):  # a training-like image: as it is
        return None if ink_box(img) is None else images.fit_square(img, size)
    if is_crop(img):  # a dim crop: a faint scan cut small
        img = dim_crop(img)
    return canonical(img, size=size, fill=fill)


def dim_crop(img: np.ndarray) -> np.ndarray:
    """A dim crop's levels spread from its paper (CLEAN_LEVEL and under: black) to its brightest
    ink (full white), so faint pencil is ink to `canonical` as dark pen is; then without the
    strays `ink.drop_strays` drops from a photo (a neighbour's fragment at the edge, dust)."""
    top = float(img.max())
    if top <= 2 * CLEAN_LEVEL:
        return img  # nothing over the paper's own noise: blank
    out = (img.astype(np.float32) - CLEAN_LEVEL) * (255.0 / (top - CLEAN_LEVEL))
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    mask = out > INK_LEVEL
    stray = mask & ~ink.drop_strays(mask, out.astype(np.float32))
    return np.where(stray, 0, out).astype(np.uint8)


def to_image(x, *, stroke_width: float = ink.DEFAULT_WIDTH) -> np.ndarray:
    """Any input as clean uint8 white-on-black: a small crop on a plain background as it is,
    anything else (strokes rasterised, photos, scans, large drawings) through `ink.find`."""
    if isinstance(x, list):
        x = Strokes(x)
    if isinstance(x, Strokes):  # our own raster: a black canvas, nothing to take away
        return ink.drawn(rasterize(x), width=stroke_width)
    img, inverted = decode_any(x)
    if is_crop(img):
        return img
    if is_digital(img):  # a saved pad drawing or a paint program's: the pad's own path
        return ink.drawn(img, width=stroke_width)
    return ink.find(255 - img if inverted else img, width=stroke_width)  # as it was taken


def is_crop(img: np.ndarray) -> bool:
    """Whether a white-on-black image is a small crop on a plain black background, like a
    dataset's images: no paper, light or ruling to take away. Plain means at least half of it
    dark, or its whole frame dark (a heavy glyph that covers most of its crop, as some of
    EMNIST's do)."""
    if max(img.shape) > CLEAN_SIDE:
        return False
    half_dark = np.count_nonzero(img <= CLEAN_LEVEL) * 2 >= img.size
    return bool(half_dark or images.border(img).max() <= CLEAN_LEVEL)


def is_clean(img: np.ndarray) -> bool:
    """Whether a white-on-black image is like the training images: a small crop whose ink
    reaches near full white (CLEAN_PEAK); a dim one is framed and stretched by `canonical`."""
    return is_crop(img) and int(img.max()) >= CLEAN_PEAK


def is_digital(img: np.ndarray) -> bool:
    """Whether a white-on-black image was drawn on a computer, not photographed or scanned: a
    flat black frame (every frame pixel at or under CLEAN_LEVEL), at least half the image that
    dark, and ink mostly saturated (more pixels at full white than between black and white).
    A photo or a scan has paper texture, or ink short of full white, and takes `ink.find`."""
    if images.border(img).max() > CLEAN_LEVEL:
        return False
    dark = np.count_nonzero(img <= CLEAN_LEVEL)
    bright = np.count_nonzero(img >= 255 - CLEAN_LEVEL)
    between = img.size - dark - bright
    return dark * 2 >= img.size and bright >= ink.MIN_PIXELS and between <= bright


def decode_any(x) -> tuple[np.ndarray, bool]:
    """A path, bytes, PIL image or array (gray/RGB/RGBA; uint8, float 0-1 or bool) -> (uint8 H×W
    white-on-black by the frame's median, whether it was inverted)."""
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        try:
            return images.decode(path.read_bytes(), max_side=ink.WORK_SIDE)
        except images.BadImage as e:
            raise ValueError(f"{path}: unreadable image ({e.reason})") from None
    if isinstance(x, (bytes, bytearray)):
        try:
            return images.decode(bytes(x), max_side=ink.WORK_SIDE)
        except images.BadImage as e:
            raise ValueError(f"unreadable image bytes ({e.reason})") from None
    if isinstance(x, Image.Image):
        return images.to_white_on_black(images.to_gray(ImageOps.exif_transpose(x)))
    if isinstance(x, np.ndarray):
        return images.to_white_on_black(_array_to_gray(x))
    raise TypeError(
        f"cannot read a {type(x).__name__} as a drawing; pass a path, bytes, PIL image, "
        "NumPy array or charlib.vision.strokes.Strokes"
    )


def _array_to_gray(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
        a = a[..., 0] if a.shape[-1] == 1 else a
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected an H×W or H×W×3/4 image array, got shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError("image array holds NaN or infinite values")
        top = float(a.max()) if a.size else 0.0
        a = np.clip(a * (255.0 if top <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3:
        mode = "RGBA" if a.shape[-1] == 4 else "RGB"
        return images.to_gray(Image.fromarray(np.ascontiguousarray(a), mode))
    return a


def ink_box(img: np.ndarray, *, min_pixels: int | None = None) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the ink, bottom/right exclusive; None when it is blank.

    Blank means fewer ink pixels than `min_pixels` (default: `ink.BLANK_SHARE` of the frame,
    and never fewer than `ink.MIN_PIXELS`).
    """
    mask = img > INK_LEVEL
    if min_pixels is None:
        min_pixels = max(ink.MIN_PIXELS, ink.BLANK_SHARE * img.size)
    if mask.sum() < max(min_pixels, 1):
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def canonical(img: np.ndarray, *, size: int, fill: float = DEFAULT_FILL) -> np.ndarray | None:
    """White-on-black uint8 -> the ink centred in a size×size frame; None for a blank image."""
    box = ink_box(img)
    if box is None:
        return None
    top, bottom, left, right = box
    crop = img[top:bottom, left:right]
    h, w = crop.shape
    side = max(h, w, int(np.ceil(max(h, w) / fill)))
    square = np.zeros((side, side), np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    square[y : y + h, x : x + w] = crop
    # Training images reach full white (EMNIST's and the synthetic ones): stretch the same way.
    return stretch(images.fit_square(square, size))


def stretch(img: np.ndarray) -> np.ndarray:
    """Scale an image so its brightest pixel is full white (255); uint8 out."""
    out = np.asarray(img, dtype=np.float32)
    return (out * (255.0 / max(out.max(), 1.0))).round().astype(np.uint8)


def ink_fill(stack: np.ndarray, *, sample: int = 2048, seed: int = 0) -> float:
    """Median share of the image side the ink's longer side takes, over a sample of N×H×W."""
    if len(stack) == 0:
        return DEFAULT_FILL
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(stack), size=min(sample, len(stack)), replace=False)
    shares = []
    for img in stack[pick]:
        box = ink_box(img)
        if box is not None:
            shares.append(max(box[1] - box[0], box[3] - box[2]) / max(img.shape))
    return round(float(np.median(shares)), 4) if shares else DEFAULT_FILL
