"""Characters drawn as a hand draws them: Hershey single-stroke fonts, deformed and inked.

The Hershey fonts (1967; the `hershey-fonts` package ships them) draw every printable ASCII
character as pen strokes, not outlines. `drawing` takes one glyph's strokes and moves them the
way hands differ: an affine change (slant, rotation, proportions), a smooth elastic warp shared by
all strokes, each stroke a little off its neighbours (gaps and overshoots where strokes meet),
a slow wobble along each stroke and rounded corners. `ink` lays them down with a round pen
whose width and pressure vary along the stroke. Deterministic by the generator passed in.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d

from charlib.vision.strokes import CANVAS_SIZE, Strokes

# Block, sans and serif styles: the built-in data. Hands write print far more often than
# copperplate, and EMNIST is print.
FONTS = (
    "futural",
    "futuram",
    "rowmans",
    "rowmand",
    "rowmant",
    "timesr",
    "timesi",
    "timesrb",
    "timesib",
)
# Script styles: never in the built-in data, kept as a hand the model has not seen
# (`benchmarks/teach.py` measures how fast a run learns it from a few examples).
SCRIPT_FONTS = ("scripts", "scriptc", "cursive")
CAP = 21.0  # font units from cap line to base line: the unit deformations are measured in
STEP = 0.02  # resampling step along a stroke, in caps
ALTERNATE = 0.5  # chance a character with hand-written forms (`ALTERNATES`) takes one of them
ALTERNATE_CHANCE = {"1": 0.9}  # ... or this chance: a typeset '1' is rare in handwriting


def _arc(cx, cy, rx, ry, start, end, n=24) -> list[tuple[float, float]]:
    """Points on an ellipse from angle `start` to `end` (degrees, 0 = right, 90 = down)."""
    t = np.deg2rad(np.linspace(start, end, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


# How hands write some characters where type does not (cap height 1, y down, top at 0): the
# forms EMNIST's writers used and the fonts lack. Each is a list of strokes.
ALTERNATES = {
    "1": [
        [[(0, 0), (0, 1)]],  # a plain stroke: how most hands write it (three times as likely)
        [[(0, 0), (0, 1)]],
        [[(0, 0), (0, 1)]],
        [[(-0.22, 0.2), (0, 0), (0, 1)]],  # with a flag
        [[(-0.22, 0.2), (0, 0), (0, 1)], [(-0.2, 1), (0.2, 1)]],  # flag and foot
    ],
    "4": [
        [[(-0.02, 0), (-0.32, 0.62), (0.3, 0.62)], [(0.14, 0.25), (0.14, 1)]],  # open top
        [[(-0.25, 0), (-0.3, 0.55), (0.25, 0.55)], [(0.2, 0.02), (0.2, 1)]],  # two strokes
    ],
    "9": [
        [_arc(0, 0.28, 0.27, 0.27, 0, 360) + [(0.27, 0.3), (0.22, 1)]],  # loop, straight stem
        [_arc(0, 0.28, 0.27, 0.27, -10, 350), [(0.27, 0.1), (0.27, 1)]],  # two strokes
    ],
    "7": [
        [[(-0.3, 0), (0.32, 0), (-0.05, 1)], [(-0.15, 0.52), (0.22, 0.52)]],  # crossed
        [[(-0.3, 0.08), (-0.3, 0), (0.32, 0), (0.0, 1)]],  # with a hook
    ],
    "6": [
        [
            [
                (0.22, 0.02),
                *_arc(0.05, 0.7, 0.3, 0.68, 265, 180),
                *_arc(0.02, 0.72, 0.26, 0.27, 180, 540),
            ]
        ],
        # a nearly straight stem into a small loop at the foot
        [[(0.18, 0), (0.0, 0.3), (-0.2, 0.72), *_arc(0.0, 0.77, 0.2, 0.22, 180, 530)]],
    ],
    "5": [  # the bar last, as a separate stroke
        [
            [(-0.2, 0.02), (-0.24, 0.42), *_arc(0, 0.68, 0.28, 0.3, -130, 150)],
            [(-0.2, 0), (0.25, 0)],
        ],
    ],
    "0": [[_arc(0, 0.5, 0.28, 0.5, -90, 280)]],  # a narrow oval, started at the top
    "2": [
        [_arc(0, 0.27, 0.27, 0.25, 200, 360) + [(0.25, 0.4), (-0.28, 1), (0.3, 1)]],
        # curled foot: a small loop where the diagonal meets the base
        [
            _arc(0, 0.27, 0.27, 0.25, 200, 360)
            + [(0.2, 0.45), (-0.22, 0.92)]
            + _arc(-0.16, 0.9, 0.08, 0.08, 180, 450)
            + [(0.3, 0.97)]
        ],
    ],
}


@lru_cache(maxsize=16)
def glyphs(font: str) -> dict[int, tuple[np.ndarray, ...]]:
    """Every printable ASCII glyph (33-126) of a Hershey font: its strokes, float (x, y) arrays,
    y down, in font units."""
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:
        raise RuntimeError("the Hershey fonts are missing; pip install hershey-fonts") from None
    f = HersheyFonts()
    f.load_default_font(font)
    out = {}
    for code in range(33, 127):
        strokes = [np.asarray(s, np.float64) for s in f.strokes_for_text(chr(code))]
        out[code] = tuple(s for s in strokes if len(s))
    return out


def drawing(code: int, rng: np.random.Generator, fonts=FONTS) -> list[np.ndarray]:
    """One hand-drawn version of character `code`: its strokes as (x, y) arrays in caps, y down."""
    font = fonts[rng.integers(len(fonts))]
    forms = ALTERNATES.get(chr(code)) if fonts == FONTS else None
    if forms and rng.random() < ALTERNATE_CHANCE.get(chr(code), ALTERNATE):
        strokes = [np.asarray(s, np.float64) for s in forms[rng.integers(len(forms))]]
    else:
        strokes = [s / CAP for s in glyphs(font)[code]]
    strokes = [_resample(s) for s in strokes]
    strokes = _warp(strokes, rng)
    return [_hand(s, rng) for s in strokes]


def _resample(stroke: np.ndarray) -> np.ndarray:
    """Points every STEP caps along the polyline (a single point stays one point)."""
    if len(stroke) < 2:
        return stroke
    seg = np.hypot(*np.diff(stroke, axis=0).T)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    if dist[-1] == 0:
        return stroke[:1]
    t = np.linspace(0, dist[-1], max(2, int(np.ceil(dist[-1] / STEP)) + 1))
    return np.stack([np.interp(t, dist, stroke[:, 0]), np.interp(t, dist, stroke[:, 1])], 1)


def _warp(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One affine change and one smooth elastic field for the whole glyph."""
    everything = np.concatenate(strokes)
    centre = (everything.min(0) + everything.max(0)) / 2
    angle = np.deg2rad(rng.normal(0, 5))
    shear = rng.uniform(-0.35, 0.15)  # hands lean right: x grows as y goes up (y is down)
    sx, sy = np.exp(rng.normal([0.05, 0.0], [0.12, 0.08]))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = rot @ np.array([[1, shear], [0, 1]]) @ np.diag([sx, sy])
    waves = rng.normal(0, 2 * np.pi * 0.7, size=(3, 2))  # about 0.7 cycles per cap height
    phases = rng.uniform(0, 2 * np.pi, size=(3, 2))
    amps = rng.uniform(0, 0.035, size=(3, 2))

    def field(p: np.ndarray) -> np.ndarray:
        return sum(amps[k] * np.sin(p @ waves[k][:, None] + phases[k]) for k in range(3))

    return [(s - centre) @ m.T + field(s - centre) for s in strokes]


def _hand(stroke: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stroke as a hand draws it: shifted off its neighbours, over- or under-shot at its
    ends, wobbling slowly and with rounded corners."""
    stroke = stroke + rng.normal(0, 0.012, size=2)
    if len(stroke) < 3:
        return stroke
    for end in (0, -1):
        chance = rng.random()
        if chance < 0.25:  # overshoot: the pen runs on past the end
            tip, before = stroke[end], stroke[end + 3 if end == 0 else end - 3]
            along = (tip - before) / (np.hypot(*(tip - before)) + 1e-9)
            extra = tip + along * np.arange(1, rng.integers(2, 6))[:, None] * STEP
            stroke = np.concatenate([extra[::-1], stroke] if end == 0 else [stroke, extra])
        elif chance < 0.4 and len(stroke) > 8:  # gap: the pen lifts early or lands late
            cut = rng.integers(1, 3)
            stroke = stroke[cut:] if end == 0 else stroke[:-cut]
    wobble = gaussian_filter1d(rng.normal(0, 0.05, size=stroke.shape), 6, axis=0, mode="nearest")
    return gaussian_filter1d(stroke + wobble, 1.0, axis=0, mode="nearest")


def ink(
    strokes: list[np.ndarray], rng: np.random.Generator, *, canvas: int = 96, fill: float = 0.8
) -> np.ndarray:
    """The strokes inked on a canvas×canvas uint8 image (white on black) with a round pen whose
    width (0.07-0.15 cap) and pressure vary; the glyph's longer side fills `fill` of it."""
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    scale = fill * canvas / max(float((hi - lo).max()), 0.3)
    offset = canvas / 2 - (lo + hi) / 2 * scale
    pen = rng.uniform(0.07, 0.15) * scale  # px
    mask = np.zeros((canvas, canvas), bool)
    width = np.zeros((canvas, canvas), np.float32)
    for s in strokes:
        xy = np.rint(s * scale + offset).astype(int).clip(0, canvas - 1)
        pressure = 1 + gaussian_filter1d(rng.normal(0, 0.6, len(s)), 8, mode="nearest")
        taper = np.minimum(
            1, 0.6 + 0.4 * np.minimum(np.arange(len(s)), np.arange(len(s))[::-1]) / 4
        )
        w = pen * np.clip(pressure, 0.6, 1.4) * taper
        mask[xy[:, 1], xy[:, 0]] = True
        np.maximum.at(width, (xy[:, 1], xy[:, 0]), w)
    dist, (iy, ix) = distance_transform_edt(~mask, return_indices=True)
    level = np.clip(width[iy, ix] / 2 - dist + 0.5, 0, 1)
    return (level * 255).astype(np.uint8)


def as_strokes(strokes: list[np.ndarray], *, size: int = CANVAS_SIZE, fill: float = 0.7) -> Strokes:
    """A drawing as the pad records it: points on a size×size canvas, the glyph centred."""
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    scale = fill * size / max(float((hi - lo).max()), 0.3)
    offset = size / 2 - (lo + hi) / 2 * scale
    return Strokes(
        [[(float(x), float(y)) for x, y in s * scale + offset] for s in strokes],
        width=size,
        height=size,
    )
