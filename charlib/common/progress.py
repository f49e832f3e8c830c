"""Progress: bars (tqdm.auto) for people at a notebook, and lines for the terminal of a
headless run (`charlib run` streams them while each notebook runs)."""

from __future__ import annotations

import os

# Set by the pipeline: a static HTML report cannot show live widget bars.
OFF_VARIABLE = "CHARLIB_PROGRESS"
# Set by the pipeline to a file it reads while a notebook runs: `report` appends lines there.
LOG_VARIABLE = "CHARLIB_PROGRESS_LOG"


def bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm.auto bar; silent when `enabled` is False or CHARLIB_PROGRESS=0."""
    from tqdm.auto import tqdm

    off = not enabled or os.environ.get(OFF_VARIABLE) == "0"
    return tqdm(iterable, disable=off, **kwargs)


def report(line: str) -> None:
    """One line for the terminal of a headless run (the file CHARLIB_PROGRESS_LOG names);
    nothing otherwise, and nothing in the notebook's own output."""
    target = os.environ.get(LOG_VARIABLE)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as log:
        log.write(" ".join(line.split()) + "\n")
