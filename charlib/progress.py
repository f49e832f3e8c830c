"""Progress bars (tqdm.auto), switched off for headless report runs."""

from __future__ import annotations

import os

# Set by the pipeline: a static HTML report cannot show live widget bars.
OFF_VARIABLE = "CHARLIB_PROGRESS"


def bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm.auto bar; silent when `enabled` is False or CHARLIB_PROGRESS=0."""
    from tqdm.auto import tqdm

    off = not enabled or os.environ.get(OFF_VARIABLE) == "0"
    return tqdm(iterable, disable=off, **kwargs)
