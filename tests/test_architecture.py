"""The package's shape: modules in data-flow order (none imports a later one), no module reaching
into another's private names, functions that fit on a screen, and a README that says so."""

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "charlib"
# The data flow, top to bottom: plumbing, data in, training, evaluation, prediction, the pad,
# batch runs, the command line. A module may import only modules listed above it.
ORDER = [
    "files",
    "progress",
    "env",
    "paths",
    "codes",
    "sources",
    "images",
    "strokes",
    "ink",
    "preprocess",
    "download",
    "emnist",
    "handwriting",
    "synth",
    "photos",
    "data",
    "mine",
    "augment",
    "batches",
    "model",
    "schedule",
    "budget",
    "distributed",
    "checkpoint",
    "train",
    "finetune",
    "plots",
    "evaluate",
    "real",
    "compare",
    "reproduce",
    "export",
    "infer",
    "explain",
    "canvas",
    "serve",
    "pipeline",
    "sweep",
    "cli",
    "__main__",
]
MAX_FUNCTION_LINES = 60


@functools.cache
def modules() -> dict[str, ast.Module]:
    return {
        p.stem: ast.parse(p.read_text(), filename=str(p))
        for p in sorted(PACKAGE.glob("*.py"))
        if p.stem != "__init__"
    }


def charlib_imports(tree: ast.Module) -> dict[str, set[str]]:
    """charlib modules a module imports (at any depth, lazy imports too) -> names taken."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("charlib."):
                    found.setdefault(alias.name.split(".")[1], set())
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "charlib":
                for alias in node.names:
                    found.setdefault(alias.name, set())
            elif node.module.startswith("charlib."):
                names = found.setdefault(node.module.split(".")[1], set())
                names.update(alias.name for alias in node.names)
    return found


def test_every_module_has_a_place_in_the_order():
    assert set(modules()) == set(ORDER), "add new modules to ORDER (and the README)"


@pytest.mark.parametrize("name", ORDER)
def test_imports_run_down_the_data_flow(name):
    later = {
        used: ORDER.index(used)
        for used in charlib_imports(modules()[name])
        if ORDER.index(used) >= ORDER.index(name)
    }
    assert not later, f"charlib.{name} imports {sorted(later)}, which come after it in ORDER"


@pytest.mark.parametrize("name", ORDER)
def test_no_private_names_from_other_modules(name):
    tree = modules()[name]
    taken = {f"{m}.{n}" for m, names in charlib_imports(tree).items() for n in names if n[0] == "_"}
    aliases = {}  # local name -> charlib module, for `module._private` attribute access
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "charlib":
            aliases.update({a.asname or a.name: a.name for a in node.names})
    reached = {
        f"{aliases[n.value.id]}.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id in aliases
        and n.attr.startswith("_")
    }
    assert not taken | reached, f"charlib.{name} uses private names {sorted(taken | reached)}"


def test_functions_fit_on_a_screen():
    long = [
        f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_readme_describes_the_same_order():
    readme = (ROOT / "README.md").read_text()
    paragraph = readme.split("- Architecture:", 1)[1].split("\n- ", 1)[0]
    named = re.findall(r"`(\w+)`", paragraph)
    in_order = [n for n in dict.fromkeys(named) if n in ORDER]
    assert in_order == ORDER, "README's architecture paragraph lists the modules out of order"
