"""What the real-handwriting benchmarks (pen_strokes.py, real_photos.py) share: how a guess is
scored against the truth, and the record of the machine they ran on.

Scores, from ranked guesses (every class of the model, best first; [] for nothing drawn):
top-1, lenient top-1 (`same`: case and `LOOKALIKES` forgiven), top-5, and digits-only top-1 (the
best of the ten digit classes) on the inputs whose truth is a digit.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from charlib.common.env import environment

DIGITS = "0123456789"
TOP = 5
# Characters nobody can tell apart from a drawing alone, forgiven by the lenient score. Upper and
# lower case of one letter always count as the same (c/C, k/K, o/O, s/S, v/V, x/X, ...: see
# `same`), so each group adds only what case does not: digits and symbols drawn like letters.
# A guess is forgiven when it and the truth are in one group; groups do not chain (9~q, q~Q,
# but not 9~Q).
LOOKALIKES = ("0Oo", "1lIi|", "2Zz", "5Ss", "6b", "9gq", "8B", "t+")


def same(guess: str, truth: str) -> bool:
    """Whether the lenient score forgives `guess` for `truth`: equal, one letter in either case,
    or both in one `LOOKALIKES` group."""
    if guess == truth or guess.lower() == truth.lower():
        return True
    return any(guess in group and truth in group for group in LOOKALIKES)


def rate(hits) -> float | None:
    hits = list(hits)
    return round(float(np.mean(hits)), 4) if hits else None


def score(ranked: list[list[str]], truth: list[str]) -> dict:
    """Ranked guesses (all classes, best first; [] for nothing drawn) vs the true characters ->
    top-1, lenient top-1, top-5 and digits-only top-1 (on digit inputs), and their counts."""
    top1 = [bool(r) and r[0] == t for r, t in zip(ranked, truth, strict=True)]
    lenient = [bool(r) and same(r[0], t) for r, t in zip(ranked, truth, strict=True)]
    top5 = [t in r[:TOP] for r, t in zip(ranked, truth, strict=True)]
    digit = [i for i, t in enumerate(truth) if t in DIGITS]
    best_digit = [next((g for g in ranked[i] if g in DIGITS), None) for i in digit]
    return {
        "n": len(truth),
        "top1": rate(top1),
        "top1_lenient": rate(lenient),
        "top5": rate(top5),
        "digit_drawings": len(digit),
        "digits_top1_open": rate(top1[i] for i in digit),
        "digits_only_top1": rate(g == truth[i] for g, i in zip(best_digit, digit, strict=True)),
        "nothing_drawn": sum(not r for r in ranked),
    }


def machine() -> dict:
    """What the benchmark ran on."""
    env = environment()
    cpu = f"CPU ({os.cpu_count()} cores, {platform.machine()}): {env['cpu']}"
    return {"device": env.get("gpu", cpu), "torch": env["torch"], "python": env["python"]}


def write_result(path: Path, result: dict, table: str) -> Path:
    """The result as JSON at `path` (folder made), then its table and where it went, printed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(table)
    print(f"-> {path}")
    return path
