"""The guides say only what is true of the checkout: README.md and docs/*.md link to files and
headings that exist, every `python -m charlib ...` they show is a command the parser knows with
options it knows, and every `make <target>` they show is a target of the Makefile."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = ("http://", "https://", "mailto:")
CHARLIB = re.compile(r"(?:^|\s)-m\s+charlib(?=\s|$)")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+(.*)")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*$")


# --- reading markdown ----------------------------------------------------------------------------


def split_code(text: str) -> tuple[str, list[str]]:
    """(the text with fenced code blocks blanked out, the code blocks' contents)."""
    prose, blocks, fence, block = [], [], None, []
    for line in text.splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, block = opened.group(1), []
            prose.append("")
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                blocks.append("\n".join(block))
                fence = None
            else:
                block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def paragraphs(prose: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", prose) if p.strip()]


def inline_code(prose: str) -> list[str]:
    """The contents of inline code spans (a span may wrap onto the next line, never past a
    blank one), whitespace collapsed."""
    return [
        " ".join(m.group(2).split()) for p in paragraphs(prose) for m in INLINE_CODE.finditer(p)
    ]


def without_inline_code(prose: str) -> str:
    return "\n\n".join(INLINE_CODE.sub(" ", p) for p in paragraphs(prose))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, characters other than letters, digits,
    spaces, hyphens and underscores dropped, spaces turned into hyphens."""
    text = LINK.sub(lambda m: m.group(1), heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    prose, _ = split_code(text)
    for line in prose.splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """Link and image targets outside code."""
    prose, _ = split_code(text)
    return [m.group(2) for m in LINK.finditer(without_inline_code(prose))]


def link_problems(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text()):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{page.name}: {target}: no such file {path}")
        elif anchor and anchor not in anchors(file.read_text()):
            problems.append(f"{page.name}: {target}: no heading #{anchor} in {file.name}")
    return problems


# --- commands shown ------------------------------------------------------------------------------


def logical_lines(block: str) -> list[str]:
    """A code block's lines, a line ending in a backslash joined with the next."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return joined.splitlines()


def without_comment(line: str) -> str:
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0]


def shown_commands(text: str) -> list[str]:
    """Every command line in code blocks, and every inline code span."""
    prose, blocks = split_code(text)
    lines = [without_comment(line) for block in blocks for line in logical_lines(block)]
    return lines + inline_code(prose)


def charlib_calls(line: str) -> list[list[str]]:
    """The arguments after each `-m charlib` in a line (`python`, `python3`, `.venv/bin/python`,
    `torchrun ...`), cut at `&&` or `;`, brackets and bars of usage lines stripped."""
    calls = []
    for match in CHARLIB.finditer(line):
        rest = re.split(r"&&|;|(?:^|\s)-m\s+charlib(?=\s|$)", line[match.end() :])[0]
        tokens = [t.strip("[]()|,") for t in rest.split()]
        calls.append([t for t in tokens if t])
    return calls


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def is_placeholder(token: str) -> bool:
    return token.startswith("<") or token in ("...", "…")


def call_problems(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What is wrong with `python -m charlib ARGS`: an unknown subcommand, or an option that
    the (sub)command it follows does not have. Values and placeholders pass."""
    problems, names = [], ["charlib"]
    for token in args:
        name = token.split("=", 1)[0]
        if FLAG.match(name):
            if name not in options(parser):
                problems.append(f"{' '.join(names)}: unknown option {name}")
        elif subcommands(parser) and not is_placeholder(token):
            if token not in subcommands(parser):
                problems.append(f"{' '.join(names)}: unknown subcommand {token!r}")
                break
            parser = subcommands(parser)[token]
            names.append(token)
    return problems


def command_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    return [
        f"`{line.strip()}`: {problem}"
        for line in shown_commands(text)
        for args in charlib_calls(line)
        for problem in call_problems(args, parser)
    ]


def make_targets(makefile: str) -> set[str]:
    """The targets that have a rule (a .PHONY name without one is no target)."""
    found = set()
    for match in re.finditer(r"^([^\s#.$][^:=\n]*?)\s*:(?!=)", makefile, re.M):
        found.update(match.group(1).split())
    return found


def make_calls(line: str) -> list[list[str]]:
    """The targets named by each `make ...` in a line; VAR=value and -flags are not targets."""
    calls = []
    for match in MAKE.finditer(line):
        rest = re.split(r"&&|;|\|", match.group(1))[0]
        try:
            tokens = shlex.split(rest)
        except ValueError:
            tokens = rest.split()
        calls.append([t for t in tokens if "=" not in t and not t.startswith("-")])
    return calls


def make_problems(text: str, targets: set[str]) -> list[str]:
    return [
        f"`{line.strip()}`: no Makefile target {target!r}"
        for line in shown_commands(text)
        for called in make_calls(line)
        for target in called
        if target not in targets
    ]


# --- the checkout's pages ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    from charlib.cli import build_parser

    return build_parser()


@pytest.fixture(scope="module")
def targets() -> set[str]:
    return make_targets((ROOT / "Makefile").read_text())


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_resolve(page):
    assert not link_problems(page)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_charlib_commands_exist(page, parser):
    assert not command_problems(page.read_text(), parser)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_make_targets_exist(page, targets):
    assert not make_problems(page.read_text(), targets)


def test_readme_links_every_guide():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(PAGES[0].read_text())}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_checks_see_the_commands(parser):
    """The guides show many commands; a parsing slip that found none would pass vacuously."""
    text = "\n".join(p.read_text() for p in PAGES)
    calls = [args for line in shown_commands(text) for args in charlib_calls(line)]
    shown = {args[0] for args in calls if args}
    assert len(calls) > 30 and shown >= set(subcommands(parser))
    assert sum(len(c) for line in shown_commands(text) for c in make_calls(line)) > 10


# --- the checkers catch what they should ---------------------------------------------------------


def test_slug_follows_github():
    assert slug("End to end: `make run` in a fresh clone") == "end-to-end-make-run-in-a-fresh-clone"
    assert slug("Real pen strokes (`external/`)") == "real-pen-strokes-external"
    assert slug("int8 ONNX") == "int8-onnx"
    assert slug("See [the card](x.md) — here") == "see-the-card--here"
    assert anchors("# A\n## Notes\n## Notes\n```\n# not a heading\n```\n## Notes\n") == {
        "a",
        "notes",
        "notes-1",
        "notes-2",
    }


def test_bad_link_and_bad_anchor_are_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Its part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#its-part), [here](#page), ![img](other.md), [web](https://x.invalid/a)\n"
        "[gone](missing.md) and [no part](other.md#nope) and [no heading](#nowhere)\n"
        "`[in code](missing2.md)`\n\n"
        "```\n[in a block](missing3.md)\n```\n"
    )
    problems = link_problems(page)
    assert len(problems) == 3, problems
    assert "missing.md" in problems[0] and "#nope" in problems[1] and "#nowhere" in problems[2]


def test_unknown_subcommand_and_flag_are_reported(parser):
    text = (
        "```bash\n"
        "python -m charlib train --data synth --epochs 2 \\\n"
        "    --per-class 3 --frobnicate\n"
        ".venv/bin/python -m charlib frobnicate --run x\n"
        "python3 -m charlib data synth --preset=synth-small [--bogus N]\n"
        "torchrun --nproc_per_node 2 -m charlib train --run-name <run>\n"
        "```\n\n"
        "Inline: `python -m charlib predict --image a.png --nope` and\n"
        "`python -m charlib data info PATH`.\n"
    )
    problems = command_problems(text, parser)
    assert len(problems) == 4, problems
    assert "--frobnicate" in problems[0]
    assert "unknown subcommand 'frobnicate'" in problems[1]
    assert "charlib data synth: unknown option --bogus" in problems[2]
    assert "--nope" in problems[3]


def test_placeholders_and_usage_lines_pass(parser):
    text = (
        "```text\n"
        "python -m charlib evaluate [--run R | --ensemble R1 R2 ...] [--tta] \\\n"
        "    [--quick | --per-class N]\n"
        "python -m charlib <command> --help\n"
        "$ python -m charlib sweep NAME -g LR=1e-3,3e-3 -p EPOCHS=4  # a comment --not-a-flag\n"
        "```\n"
        "The module `python -m charlib` itself.\n"
    )
    assert command_problems(text, parser) == []


def test_unknown_make_target_is_reported():
    targets = make_targets("X := 1\n.PHONY: run lint\nrun: $(STAMP)  ## r\n\tpython x\ntest:\n")
    assert targets == {"run", "test"}
    text = (
        '```bash\nmake run DATA=emnist ARGS="--epochs 2"   # fine\nmake deploy\n```\n'
        "`CHARLIB_X=1 make test`, `make lint` and a bare `make`.\n"
    )
    problems = make_problems(text, targets)
    assert len(problems) == 2, problems
    assert "'deploy'" in problems[0] and "'lint'" in problems[1]
