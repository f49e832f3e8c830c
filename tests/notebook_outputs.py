"""Reading executed notebooks: their outputs, text, figures and errors (for the notebook tests)."""

from __future__ import annotations

import nbformat


def outputs(executed) -> list:
    """Every output of every code cell of an executed notebook, in order."""
    nb = nbformat.read(executed, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def text_of(outs) -> str:
    """The printed text and plain-text results of `outs`, joined."""
    parts = []
    for o in outs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def figures(outs) -> int:
    """How many static PNG figures `outs` hold."""
    return sum("image/png" in o.get("data", {}) for o in outs)


def errors(outs) -> list:
    """The error outputs of `outs` (an empty list when every cell ran)."""
    return [o for o in outs if o.output_type == "error"]
