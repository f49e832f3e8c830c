"""A character as a user hands it in: written with a pen on paper, then photographed or scanned.

`render(glyph, rng, degradations)` turns a white-on-black glyph (an EMNIST image, a pad drawing)
into the bytes of an image file: the glyph's shape drawn with a pen of a chosen colour and width
on paper, with the degradations named (one, several or none; `DEGRADATIONS` lists them). The
robustness benchmark, the tests and notebook 05 use it to measure and show how `preprocess`
reads such pictures. `through_cleaner` is the optional training augmentation "photo": a share
of the training images rendered as photos and read back through the photo path, so that a
model learns what the cleaner leaves.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import numpy as np
from PIL import Image, ImageFilter

from charlib.common.progress import bar
from charlib.vision.preprocess import ink_box, model_view

DEGRADATIONS = {
    "paper": "off-white paper tone and a lighting gradient across the page",
    "shadow": "a soft-edged shadow over part of the page",
    "noise": "sensor noise (Gaussian, sigma 10 of 255)",
    "blur": "slight defocus blur",
    "jpeg": "JPEG compression, quality 60",
    "small": "the character small and off-centre in a large frame",
    "blue_pen": "blue ballpoint instead of black",
    "thin_pen": "a thin ballpoint (each stroke a third as wide as the writer's own)",
    "thick_pen": "a thick marker (each stroke 7% of the character's height wider)",
    "rotation": "the page turned by up to 10 degrees",
    "lined": "ruled paper (light blue lines)",
    "squared": "squared paper (light grey grid)",
    "large": "a 3000×4000 phone photo (JPEG)",
}
BLACK_INK, BLUE_INK = (30, 30, 38), (28, 50, 150)
FRAME = (480, 640)  # width, height of a photo of one character
LARGE_FRAME = (3000, 4000)


def render(glyph: np.ndarray, rng: np.random.Generator, degradations=()) -> bytes:
    """White-on-black uint8 glyph -> PNG (or JPEG with 'jpeg'/'large') bytes of a photo of it."""
    unknown = set(degradations) - set(DEGRADATIONS)
    if unknown:
        raise ValueError(
            f"unknown degradation(s) {sorted(unknown)}; choose from {list(DEGRADATIONS)}"
        )
    if "thin_pen" in degradations and "thick_pen" in degradations:
        raise ValueError("a character is written with one pen: pick thin_pen or thick_pen")
    d = set(degradations)
    width, height = LARGE_FRAME if "large" in d else FRAME
    share = rng.uniform(0.12, 0.2) if "small" in d else rng.uniform(0.35, 0.65)
    char_h = int(share * min(width, height))
    ink = _pen(glyph, char_h, rng, d)
    page = _paper(width, height, rng, d)
    coverage = _place(ink, width, height, rng, centred="small" not in d)
    colour = np.array(BLUE_INK if "blue_pen" in d else BLACK_INK, np.float32)
    strength = rng.uniform(0.85, 1.0)
    photo = page * (1 - strength * coverage[..., None]) + colour * strength * coverage[..., None]
    photo = _camera(photo, rng, d)
    out = io.BytesIO()
    if "jpeg" in d or "large" in d:
        Image.fromarray(photo).save(out, format="JPEG", quality=60 if "jpeg" in d else 90)
    else:
        Image.fromarray(photo).save(out, format="PNG")
    return out.getvalue()


def _pen(glyph: np.ndarray, char_h: int, rng, d: set) -> np.ndarray:
    """The glyph's ink box scaled to char_h px tall, as pen coverage 0-1 (float32)."""
    box = ink_box(np.asarray(glyph, np.uint8), min_pixels=1)
    if box is None:
        return np.zeros((char_h, char_h), np.float32)
    g = np.asarray(glyph, np.float32)[box[0] : box[1], box[2] : box[3]]
    scale = char_h / g.shape[0]
    size = (max(1, round(g.shape[1] * scale)), char_h)
    big = Image.fromarray(g.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    if "rotation" in d:
        big = big.rotate(rng.uniform(-10, 10), Image.Resampling.BICUBIC, expand=True)
    shape = np.asarray(big, np.float32) / 255.0 > 0.5
    if "thin_pen" in d or "thick_pen" in d:
        from scipy import ndimage

        if "thin_pen" in d:  # the middle of each stroke: the same path, a third as wide
            inside = ndimage.distance_transform_edt(shape)
            local = ndimage.maximum_filter(inside, size=max(3, char_h // 10))
            shape = inside > 0.65 * local
        else:  # the same strokes, each side widened by 3.5% of the height
            shape = ndimage.distance_transform_edt(~shape) <= max(1.0, 0.035 * char_h)
    soft = Image.fromarray(shape.astype(np.uint8) * 255).filter(
        ImageFilter.GaussianBlur(max(0.6, char_h / 400))
    )
    return np.asarray(soft, np.float32) / 255.0


def _paper(width: int, height: int, rng, d: set) -> np.ndarray:
    """The blank page, H×W×3 float32 0-255: white, or toned and lit unevenly, ruled or squared."""
    page = np.full((height, width, 3), 250.0, np.float32)
    if "paper" in d:
        page[:] = np.array([238, 232, 215], np.float32) + rng.uniform(-8, 8, 3)
        page *= _ramp(width, height, rng, low=rng.uniform(0.7, 0.8))[..., None]
    if "lined" in d or "squared" in d:
        step = max(12, int(min(width, height) * rng.uniform(0.06, 0.09)))
        thick = max(1, step // 14)
        colour = np.array([165, 195, 235] if "lined" in d else [185, 190, 200], np.float32)
        offset = int(rng.integers(0, step))
        lines = np.zeros((height, width), bool)
        for y in range(offset, height, step):
            lines[y : y + thick] = True
        if "squared" in d:
            for x in range(offset, width, step):
                lines[:, x : x + thick] = True
        page[lines] = page[lines] * colour / 255.0
    if "shadow" in d:
        edge = _ramp(width, height, rng, low=0.0)
        cut = rng.uniform(0.3, 0.6)
        soft = np.clip((edge - cut) / 0.15 + 0.5, 0, 1)  # soft edge, 15% of the ramp wide
        page *= (1 - rng.uniform(0.35, 0.5) * soft)[..., None]
    return page


def _ramp(width: int, height: int, rng, low: float) -> np.ndarray:
    """A linear ramp low..1 across the page in a random direction (H×W float32)."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = x * np.cos(angle) / width + y * np.sin(angle) / height
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (low + (1 - low) * t).astype(np.float32)


def _place(ink: np.ndarray, width: int, height: int, rng, centred: bool) -> np.ndarray:
    """Pen coverage on a width×height page: near the centre, or anywhere (off-centre)."""
    out = np.zeros((height, width), np.float32)
    h, w = min(ink.shape[0], height), min(ink.shape[1], width)
    spread = 0.08 if centred else 0.5
    cy = height / 2 + rng.uniform(-spread, spread) * (height - h)
    cx = width / 2 + rng.uniform(-spread, spread) * (width - w)
    top, left = int(np.clip(cy - h / 2, 0, height - h)), int(np.clip(cx - w / 2, 0, width - w))
    out[top : top + h, left : left + w] = ink[:h, :w]
    return out


def _camera(photo: np.ndarray, rng, d: set) -> np.ndarray:
    """Blur and sensor noise; uint8 H×W×3 out."""
    if "blur" in d:
        sigma = rng.uniform(1.0, 1.8) * max(photo.shape[:2]) / 640
        img = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
        photo = np.asarray(img.filter(ImageFilter.GaussianBlur(sigma)), np.float32)
    if "noise" in d:
        photo = photo + rng.normal(0, 10, photo.shape).astype(np.float32)
    return np.clip(photo, 0, 255).round().astype(np.uint8)


# Training images handed through a photo and the cleaner (the augmentation "photo"): each
# degradation is drawn with this probability (one pen and one ruling at most).
TRAIN_MIX = 0.3
PENS, RULINGS = ("thin_pen", "thick_pen"), ("lined", "squared")


def random_degradations(rng: np.random.Generator) -> tuple[str, ...]:
    """A random set of degradations, as a photo a user takes might have."""
    plain = [d for d in DEGRADATIONS if d not in (*PENS, *RULINGS, "large")]
    chosen = [d for d in plain if rng.random() < TRAIN_MIX]
    for group in (PENS, RULINGS):
        if rng.random() < TRAIN_MIX:
            chosen.append(group[int(rng.integers(len(group)))])
    return tuple(chosen)


def through_cleaner(
    images: np.ndarray, share: float, *, seed: int = 0, fill: float, width: float, workers=None
) -> tuple[np.ndarray, int]:
    """Training images with `share` of them (chosen by `seed`) replaced by what the photo path
    makes of them: each rendered as a photo (`render`, random degradations) and read back by
    `preprocess.model_view` at the images' size, the run's `fill` and stroke `width`. A picture
    the cleaner finds blank keeps its original. Returns (images, how many were replaced)."""
    if not 0 <= share <= 1:
        raise ValueError(f"photo share must be between 0 and 1, got {share!r}")
    rng = np.random.default_rng(seed)
    pick = np.flatnonzero(rng.random(len(images)) < share)
    jobs = [
        (images[i], int(s), fill, width)
        for i, s in zip(pick, rng.integers(2**31, size=len(pick)), strict=True)
    ]
    out = images.copy()
    replaced = 0
    workers = 1 if len(jobs) < 256 else workers or min(4, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        seen = pool.map(_through_one, jobs, chunksize=64) if pool else map(_through_one, jobs)
        for i, view in zip(
            pick, bar(seen, total=len(pick), desc="photos through the cleaner"), strict=True
        ):
            if view is not None:
                out[i], replaced = view, replaced + 1
    return out, replaced


def _through_one(job) -> np.ndarray | None:
    glyph, seed, fill, width = job
    rng = np.random.default_rng(seed)
    picture = render(glyph, rng, random_degradations(rng))
    return model_view(picture, size=glyph.shape[0], fill=fill, stroke_width=width)
