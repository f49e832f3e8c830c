"""Drawings as pen strokes (coordinates, not pixels) and their rasteriser.

The pad, the scripted drawings and every other stroke source share this one representation:
prediction never reads pixels back from a browser (ipycanvas image data is unavailable in
headless runs), the strokes are redrawn here, so a scripted drawing and a hand-drawn one take
exactly the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

CANVAS_SIZE = 280  # px, the pad's default side
PEN = 0.06  # pen width as a share of the canvas's shorter side (17 px on 280)


@dataclass
class Strokes:
    """Pen strokes on a width×height canvas; each stroke is a list of (x, y) points in px."""

    strokes: list[list[tuple[float, float]]] = field(default_factory=list)
    width: int = CANVAS_SIZE
    height: int = CANVAS_SIZE
    pen: float = PEN

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"canvas must be at least 1×1 px, got {self.width}×{self.height}")
        if not 0 < self.pen <= 1:
            raise ValueError(f"pen must be a share of the canvas side in (0, 1], got {self.pen}")
        self.strokes = [[(float(x), float(y)) for x, y in s] for s in self.strokes]

    @property
    def empty(self) -> bool:
        """Whether nothing was drawn."""
        return not any(self.strokes)

    @property
    def pen_px(self) -> float:
        """Pen width in canvas pixels."""
        return max(1.0, self.pen * min(self.width, self.height))

    def to_dict(self) -> dict:
        """JSON-ready: {"strokes": [[[x, y], ...], ...], "width", "height", "pen"}."""
        points = [[[round(x, 2), round(y, 2)] for x, y in s] for s in self.strokes]
        return {"strokes": points, "width": self.width, "height": self.height, "pen": self.pen}

    @classmethod
    def from_dict(cls, obj: dict) -> Strokes:
        """The inverse of `to_dict` (a saved drawing read back)."""
        return cls(obj["strokes"], int(obj["width"]), int(obj["height"]), float(obj["pen"]))


def rasterize(drawing: Strokes) -> np.ndarray:
    """Strokes -> uint8 height×width, white ink on black, round caps and joints."""
    img = Image.new("L", (drawing.width, drawing.height), 0)
    draw = ImageDraw.Draw(img)
    width = drawing.pen_px
    r = width / 2
    for stroke in drawing.strokes:
        if len(stroke) > 1:
            draw.line(stroke, fill=255, width=max(1, round(width)))
        for x, y in stroke:  # round caps and joints (Pillow's "curve" joint leaves gaps)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(img, dtype=np.uint8)


def _pts(*xy: float) -> list[tuple[float, float]]:
    return list(zip(xy[::2], xy[1::2], strict=True))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return [(cx + rx * np.sin(a), cy - ry * np.cos(a)) for a in t]


# Hand-placed drawings on the default 280 px canvas: the notebook's static report and the tests
# feed them through exactly the path a drawing on the pad takes.
SCRIPTED = {
    "A": Strokes([_pts(80, 240, 140, 40, 200, 240), _pts(106, 165, 174, 165)]),
    "7": Strokes([_pts(80, 50, 200, 50, 120, 240)]),
    "L": Strokes([_pts(95, 40, 95, 240, 195, 240)]),
    "O": Strokes([_ellipse(140, 140, 70, 100)]),
    "1": Strokes([_pts(115, 75, 145, 40, 145, 240), _pts(110, 240, 180, 240)]),
}
