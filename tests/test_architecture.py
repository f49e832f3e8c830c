"""The package's shape: subpackages by stage, modules in data-flow order (none imports a later
one), no module reaching into another's private names, functions that fit on a screen, and a
development guide that says so."""

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "charlib"
# The data flow, top to bottom, subpackage by subpackage: plumbing, any input to the model's
# view, data in, training, what a model says, the apps, runs of many steps, the command line.
# A module may import only modules listed above it (so a subpackage only those above it).
LAYERS = {
    "common": ["files", "progress", "env", "paths", "codes"],
    "vision": ["images", "strokes", "ink", "preprocess"],
    "data": ["sources", "download", "emnist", "handwriting", "synth", "photos", "loading", "mine"],
    "training": [
        "augment",
        "batches",
        "model",
        "schedule",
        "budget",
        "settings",
        "distributed",
        "checkpoint",
        "loop",
        "train",
        "finetune",
    ],
    "inference": ["plots", "evaluate", "real", "export", "infer", "explain"],
    "apps": ["canvas", "serve"],
    "workflow": ["compare", "reproduce", "pipeline", "handover", "cluster", "sweep"],
    "": ["cli", "__main__"],
}
ORDER = [f"{pkg}.{m}" if pkg else m for pkg, mods in LAYERS.items() for m in mods]
MAX_FUNCTION_LINES = 60


@functools.cache
def modules() -> dict[str, ast.Module]:
    """'vision.ink' (or 'cli' at the top) -> its parsed source."""
    found = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        if p.stem == "__init__":
            continue
        name = ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        found[name] = ast.parse(p.read_text(), filename=str(p))
    return found


def subpackages() -> list[Path]:
    return sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def entry(module: str) -> str | None:
    """A dotted charlib module as its ORDER entry: 'charlib.vision.ink' -> 'vision.ink'."""
    dotted = module.partition(".")[2]
    return dotted if dotted in ORDER else None


def imported_module(module: str, name: str) -> str | None:
    """The ORDER entry `from <module> import <name>` binds when it imports a module
    ('charlib.vision' + 'ink' -> 'vision.ink'), else None (a name from a module)."""
    return entry(f"{module}.{name}")


def charlib_imports(tree: ast.Module) -> dict[str, set[str]]:
    """charlib modules a module imports (at any depth, lazy imports too) -> names taken."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("charlib."):
                    found.setdefault(entry(alias.name) or alias.name, set())
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charlib"):
            for alias in node.names:
                module = imported_module(node.module, alias.name)
                if module:
                    found.setdefault(module, set())
                else:  # a name from a module
                    found.setdefault(entry(node.module) or node.module, set()).add(alias.name)
    return found


def module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to charlib modules by `from charlib.<pkg> import <module>`."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charlib"):
            for a in node.names:
                module = imported_module(node.module, a.name)
                if module:
                    aliases[a.asname or a.name] = module
    return aliases


def test_every_module_has_a_place_in_the_order():
    assert set(modules()) == set(ORDER), "add new modules to LAYERS (and docs/development.md)"


def test_the_subpackages_are_the_stages_and_say_what_they_hold():
    assert [p.name for p in subpackages()] == sorted(k for k in LAYERS if k)
    for folder in subpackages():
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and "Imports" in doc, f"charlib/{folder.name}/__init__.py: say what it holds"
        named = set(re.findall(r"`(\w+)`", doc))
        missing = set(LAYERS[folder.name]) - named
        assert not missing, f"charlib/{folder.name}/__init__.py does not name {sorted(missing)}"


def test_the_checker_reads_both_import_forms():
    tree = ast.parse(
        "from charlib.vision import ink, preprocess as pre\n"
        "from charlib.data.loading import load_dataset\n"
        "import charlib.training.train\n"
        "from charlib import cli\n"
    )
    assert charlib_imports(tree) == {
        "vision.ink": set(),
        "vision.preprocess": set(),
        "data.loading": {"load_dataset"},
        "training.train": set(),
        "cli": set(),
    }
    assert module_aliases(tree) == {"ink": "vision.ink", "pre": "vision.preprocess", "cli": "cli"}


@pytest.mark.parametrize("name", ORDER)
def test_imports_run_down_the_data_flow(name):
    used = charlib_imports(modules()[name])
    unknown = sorted(u for u in used if u not in ORDER)
    assert not unknown, f"charlib.{name} imports {unknown}: not charlib modules in ORDER"
    later = {u: ORDER.index(u) for u in used if ORDER.index(u) >= ORDER.index(name)}
    assert not later, f"charlib.{name} imports {sorted(later)}, which come after it in ORDER"


@pytest.mark.parametrize("name", ORDER)
def test_no_private_names_from_other_modules(name):
    tree = modules()[name]
    taken = {f"{m}.{n}" for m, names in charlib_imports(tree).items() for n in names if n[0] == "_"}
    aliases = module_aliases(tree)  # local name -> charlib module, for `module._private`
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


def test_the_development_guide_describes_the_same_order():
    guide = (ROOT / "docs" / "development.md").read_text()
    paragraph = guide.split("- Architecture:", 1)[1].split("\n- ", 1)[0]
    named = re.findall(r"`(\w+)`", paragraph)
    listed = [n for pkg, mods in LAYERS.items() for n in ([pkg] if pkg else []) + mods]
    in_order = [n for n in dict.fromkeys(named) if n in set(listed)]
    assert in_order == list(dict.fromkeys(listed)), (
        "docs/development.md's architecture paragraph lists the stages out of order"
    )
