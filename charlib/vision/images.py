"""Any image Pillow reads -> 8-bit grayscale, white strokes on black (the canvas convention)."""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Why a file was skipped; the load report counts files per reason.
EMPTY, NOT_IMAGE, TRUNCATED, CORRUPT = "empty file", "not an image", "truncated", "corrupt"
TOO_LARGE = "too large"
# The most pixels an image may have (a 48-megapixel phone photo, 8000×6000, passes). It is checked
# from the header, before any pixel is decoded, so a small file claiming a huge image (a
# decompression bomb: 20000×20000 of one colour is a few hundred KB as PNG) cannot fill the memory.
MAX_PIXELS = 64_000_000


class BadImage(ValueError):
    """An image file that cannot be used; `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode(data: bytes, *, max_side: int | None = None) -> tuple[np.ndarray, bool]:
    """Bytes of an image file -> (uint8 H×W white-on-black array, whether it was inverted).

    `max_side` lets a large JPEG decode at 1/2, 1/4 or 1/8 of its size (never under max_side
    on its longer side): a 12-megapixel photo decodes in a few milliseconds instead of ~100.
    """
    with opened(data) as img:
        if max_side:
            shrink_on_load(img, max_side)
        img.load()
        gray = to_gray(ImageOps.exif_transpose(img))
    if gray.size == 0:
        raise BadImage(CORRUPT, "image has no pixels")
    return to_white_on_black(gray)


def probe(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """An image file's (width, height) from its header alone, refused past `max_pixels`;
    no pixel is decoded."""
    with opened(data, max_pixels) as img:
        return img.size


@contextmanager
def opened(data: bytes, max_pixels: int = MAX_PIXELS):
    """The PIL image in `data`, its size checked from the header before any pixel is decoded;
    every failure, in the `with` body too, as a BadImage with its reason."""
    if not data:
        raise BadImage(EMPTY)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit refuses) in Image.open: both are TOO_LARGE.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                check_size(img.size, max_pixels)
                yield img
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(TOO_LARGE, f"over the {max_pixels:,}-pixel limit") from None
    except UnidentifiedImageError as e:
        raise BadImage(NOT_IMAGE, str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        text = str(e).lower()
        reason = TRUNCATED if ("truncat" in text or "eof" in text) else CORRUPT
        raise BadImage(reason, str(e)) from None


def check_size(size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image of more than `max_pixels` pixels (from its header, before decoding)."""
    w, h = size
    if w * h > max_pixels:
        raise BadImage(TOO_LARGE, f"{w}×{h} pixels, over the {max_pixels:,} limit")


def shrink_on_load(img: Image.Image, side: int) -> None:
    """Ask a JPEG to decode in gray at the smallest scale keeping `side` px on its long side."""
    w, h = img.size
    if img.format == "JPEG" and max(w, h) >= 2 * side:
        scale = side / max(w, h)
        img.draft("L", (int(np.ceil(w * scale)), int(np.ceil(h * scale))))


def to_gray(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode (16-bit, float, palette, alpha, RGB) -> uint8 H×W luminance."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's convert("L") clips these instead of scaling them.
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        scale = 255.0 if top <= 1.0 else (1.0 if top <= 255 else 255.0 / 65535.0)
        return np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        return _flatten_alpha(img.convert("RGBA"))
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _flatten_alpha(img: Image.Image) -> np.ndarray:
    """Composite onto the background that contrasts with the opaque pixels (ink on glass)."""
    rgba = np.asarray(img, dtype=np.float32)
    alpha = rgba[..., 3] / 255.0
    lum = np.asarray(img.convert("RGB").convert("L"), dtype=np.float32)
    if alpha.min() >= 1.0:
        return lum.astype(np.uint8)
    opaque = lum[alpha > 0.5]
    background = 255.0 if (opaque.size and opaque.mean() < 128) else 0.0
    return (lum * alpha + background * (1 - alpha)).round().astype(np.uint8)


def border(arr: np.ndarray) -> np.ndarray:
    """The one-pixel frame of an H×W array, flattened."""
    return np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])


def to_white_on_black(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Invert dark-on-light images; the frame's median tells the background."""
    if np.median(border(gray)) > 127:
        return 255 - gray, True
    return gray, False


def fit_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Pad to a centred square with black (aspect ratio kept), then resize to size×size."""
    h, w = arr.shape
    if h == w == size:
        return arr
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = arr
    if side == size:
        return square
    img = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)
