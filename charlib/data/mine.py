"""Your own examples: drawings saved from the pad, to teach a run your hand.

`save` keeps a drawing under data/mine/<code>/ (the AlphaNum layout, one folder per ASCII code):
NNNNN.png, the 28×28 image the model sees (dark on light like AlphaNum, so every loader reads
it), and NNNNN.json, the strokes themselves with the label. A file is never overwritten: each
save takes the next free number. `finetune` adapts a run to these examples.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from charlib.common import paths
from charlib.common.codes import IMAGE_SIZE, UNKNOWN, code_to_char, display_label, is_code
from charlib.data.loading import STROKES_SUFFIX
from charlib.vision import preprocess
from charlib.vision.strokes import Strokes

FOLDER = "mine"  # under data/
MIN_EXAMPLES = 3  # per character, before fine-tuning will run


def default_dir() -> Path:
    """data/mine in the project."""
    return paths.data_dir() / FOLDER


def label_code(label, classes=None) -> int:
    """The class code of a label the user typed or picked ('A', 65, 'unknown'); refused in one
    line when empty, longer than one character, unprintable, or not one of `classes`."""
    if label is None or (isinstance(label, str) and label.strip() == ""):
        raise ValueError("choose the right character first (type or pick it), then save")
    if isinstance(label, (int, np.integer)):
        code = int(label)
    elif label == "unknown":
        code = UNKNOWN
    elif len(label) != 1:
        raise ValueError(f"the label must be one character, got {label!r}; type only that one")
    else:
        code = ord(label)
    if code != UNKNOWN and not (0 < code <= 0x10FFFF and code_to_char(code) == chr(code)):
        raise ValueError(f"{label!r} is not a printable character; type the character you drew")
    if classes is not None and code not in tuple(int(c) for c in classes):
        raise ValueError(
            f"{display_label(code)} is not one of the run's {len(classes)} classes; pick one of"
            " them (teaching a new character needs a run trained with it)"
        )
    return code


def save(drawing: Strokes, label, *, image=None, dest=None, classes=None, note=None) -> Path:
    """Store `drawing` as an example of `label` under dest/<code>/; returns the PNG's path.

    `image` is the uint8 white-on-black view the model saw (made from the strokes when None);
    `note` (a dict, e.g. the model's wrong guess) is kept in the JSON.
    """
    code = label_code(label, classes)
    if drawing.empty:
        raise ValueError("nothing drawn: draw the character, then save it")
    if image is None:
        image = preprocess.model_view(drawing, size=IMAGE_SIZE)
    folder = Path(dest or default_dir()) / str(code)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f"cannot save into {folder}: {e.strerror or e}; make it writable or save elsewhere"
        ) from None
    record = {
        "label": code_to_char(code),
        "code": code,
        "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    record |= {"note": note or {}, "drawing": drawing.to_dict()}
    return _write_new(folder, _png(image), json.dumps(record).encode())


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(255 - np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_new(folder: Path, png: bytes, strokes: bytes) -> Path:
    """NNNNN.png and NNNNN.json under the first number neither file takes; never overwrites."""
    n = len(list(folder.glob("*.png"))) + 1
    while True:
        stem = folder / f"{n:05d}"
        try:
            with open(stem.with_suffix(STROKES_SUFFIX), "xb") as f:  # claims the number
                f.write(strokes)
        except FileExistsError:
            n += 1
            continue
        except OSError as e:
            raise PermissionError(
                f"cannot save into {folder}: {e.strerror or e}; make it writable or save elsewhere"
            ) from None
        try:
            with open(stem.with_suffix(".png"), "xb") as f:
                f.write(png)
        except FileExistsError:  # a PNG without its strokes was there: keep it, take the next
            os.unlink(stem.with_suffix(STROKES_SUFFIX))
            n += 1
            continue
        return stem.with_suffix(".png")


def counts(dest=None) -> dict[int, int]:
    """Saved examples per class code, in code order ({} when nothing was saved)."""
    root = Path(dest or default_dir())
    if not root.is_dir():
        return {}
    found = {
        int(d.name): sum(1 for _ in d.glob("*.png"))
        for d in root.iterdir()
        if d.is_dir() and is_code(d.name)
    }
    return {c: n for c, n in sorted(found.items()) if n}


def drawings(dest=None) -> list[tuple[Strokes, int]]:
    """Every saved drawing's strokes and class code, read back from its JSON (files that are
    not a saved drawing are left out)."""
    root = Path(dest or default_dir())
    out = []
    for path in sorted(root.glob(f"*/*{STROKES_SUFFIX}")) if root.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            out.append((Strokes.from_dict(record["drawing"]), int(record["code"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def counts_line(found: dict[int, int]) -> str:
    """'A ×3, b ×5 (8 examples)' or 'none saved yet'."""
    if not found:
        return "none saved yet"
    parts = ", ".join(f"{code_to_char(c)} ×{n}" for c, n in found.items())
    return f"{parts} ({sum(found.values())} examples)"
