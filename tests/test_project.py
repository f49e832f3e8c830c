"""The project's own promises: dependency lists in step, clean notebooks, README matching CI."""

import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    pip = text.split("- pip:", 1)[1]
    listed = {m.strip() for m in re.findall(r"^\s+- (.+)$", pip, re.M)} - {"-e ."}
    assert listed == wanted


def test_notebooks_exist_in_order():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_explore_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c for c in code if c.outputs or c.execution_count], "stored with outputs"
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be 'parameters'"
    assert re.search(r"\bSMOKE\s*=", code[0].source)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "**produces:**" in first.source
    assert not [c for c in code if re.search(r"^\s*def ", c.source, re.M)], (
        "logic belongs in charlib"
    )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and re.search(r"^make test$", ci, re.M)
    setup = readme.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", setup, re.M)
    assert commands == ["make run", "make test"]


def test_gitignore_keeps_data_out():
    ignored = (ROOT / ".gitignore").read_text()
    for entry in (".venv/", "/data/*", "/runs/", "/reports/*"):
        assert entry in ignored
