"""The drawing pad end to end in headless Chromium (JupyterLab, Voila): draw, Predict, Clear.

Set CHARLIB_BROWSER_RUN to a trained run folder (e.g. runs/default) to drive the pad with that
model instead of the session's 1-epoch one; the screenshots then show real guesses. Screenshots
go to a temporary folder; CHARLIB_REFRESH_SCREENSHOT=1 also copies the Voila pad's to
docs/drawing_pad.png, the README's picture.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, free_port, server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_interactive_demo.ipynb"
README_SHOT = ROOT / "docs" / "drawing_pad.png"
TIMEOUT_MS = 60_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)

# The same strokes the notebook and unit tests use, scaled onto the canvas on screen.
from charlib.vision.strokes import SCRIPTED  # noqa: E402


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots and the guesses seen go: a temporary folder, never the checkout."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    """A runs folder holding one trained run, and a folder with a copy of notebook 05."""
    base = tmp_path_factory.mktemp("browser")
    runs, root = base / "runs", base / "root"
    runs.mkdir()
    root.mkdir()
    chosen = Path(os.environ.get("CHARLIB_BROWSER_RUN") or tiny_run)
    (runs / chosen.name).symlink_to(chosen.resolve())
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    env = {"CHARLIB_RUNS_DIR": str(runs), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    env["CHARLIB_DATA_DIR"] = str(base / "data")  # where a pad's saved drawings would go
    return base, root, env


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def draw(page, canvas, drawing) -> None:
    """Draw `drawing`'s strokes with the mouse over the canvas element on screen."""
    box = settled_box(canvas)
    sx, sy = box["width"] / drawing.width, box["height"] / drawing.height
    for stroke in drawing.strokes:
        points = [(box["x"] + x * sx, box["y"] + y * sy) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()


def settled_box(canvas, timeout: float = 10) -> dict:
    """The canvas's box on screen once it is in view and has stopped moving (layout settled)."""
    deadline = time.monotonic() + timeout
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        canvas.scroll_into_view_if_needed()
        again = canvas.bounding_box()
        if again == box:
            return box
        box = again
    pytest.fail(f"the canvas kept moving for {timeout:.0f} s (last box {box})")


def ink(canvas, *, more_than: int | None = None, timeout: float = 10) -> int:
    """White pixels on the pad's <canvas>; with `more_than`, waits until there are more."""
    deadline = time.monotonic() + timeout
    while True:
        n = _ink(canvas)
        if more_than is None or n > more_than or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def _ink(canvas) -> int:
    return canvas.evaluate(
        """el => {
            const c = el.tagName === 'CANVAS' ? el : el.querySelector('canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++;
            return n;
        }"""
    )


def exercise_pad(page, where: str, tmp: Path, shots: Path) -> dict:
    """Draw an 'A' and a '7', predict each, clear; screenshots; returns the guesses seen."""
    expect = sync_api.expect
    pad = page.locator(".charlib-pad")
    try:
        pad.wait_for(state="visible", timeout=TIMEOUT_MS)
    except sync_api.TimeoutError:
        page.screenshot(path=tmp / f"{where}_no_pad.png", full_page=True)
        pytest.fail(f"{where}: the drawing pad did not appear in {TIMEOUT_MS / 1000:.0f} s")
    canvas = pad.locator(".charlib-canvas").first
    rows = pad.locator(".charlib-results .charlib-prediction")
    strokes = pad.locator(".charlib-strokes")
    expect(strokes).to_have_text("0 strokes", timeout=TIMEOUT_MS)
    assert ink(canvas) == 0, "the pad should start black"
    seen = {}
    for char in ("A", "7"):
        draw(page, canvas, SCRIPTED[char])
        n = len(SCRIPTED[char].strokes)
        try:
            expect(strokes).to_have_text(f"{n} stroke{'' if n == 1 else 's'}", timeout=10_000)
        except AssertionError:
            page.screenshot(path=tmp / f"{where}_strokes_{char}.png", full_page=True)
            raise
        if ink(canvas, more_than=1000) <= 1000:
            page.screenshot(path=tmp / f"{where}_no_ink.png", full_page=True)
            pytest.fail(f"{where}: the pen left no visible ink for '{char}'")
        pad.locator(".charlib-predict button, button.charlib-predict").first.click()
        expect(rows).to_have_count(5, timeout=20_000)
        guesses = [
            {
                "char": r.get_attribute("data-char"),
                "code": int(r.get_attribute("data-code")),
                "confidence": float(r.get_attribute("data-confidence")),
                "shown": r.locator(".charlib-confidence").inner_text(),
            }
            for r in rows.all()
        ]
        assert all(g["shown"].endswith("%") for g in guesses), guesses
        seen[char] = guesses
        top = guesses[0]
        print(f"{where}: drew '{char}', top guess {top['char']!r} ({top['code']}) {top['shown']}")
        if char == "A":
            pad.screenshot(path=shots / f"drawing_pad_{where}.png")
            page.screenshot(path=tmp / f"drawing_pad_{where}_page.png", full_page=True)
        pad.locator(".charlib-clear button, button.charlib-clear").first.click()
        expect(rows).to_have_count(0, timeout=10_000)
        expect(strokes).to_have_text("0 strokes", timeout=10_000)
        assert ink(canvas) == 0, f"{where}: Clear left ink on the canvas"
    expect(pad.locator(".charlib-results")).to_contain_text("Draw a character")
    pad.locator(".charlib-predict button, button.charlib-predict").first.click()
    expect(pad.locator(".charlib-results")).to_contain_text("nothing drawn", timeout=10_000)
    pad.screenshot(path=tmp / f"drawing_pad_{where}_cleared.png")
    record(shots / "browser_predictions.json", where, seen)
    return seen


def record(path: Path, where: str, seen: dict) -> None:
    """Keep the guesses each browser test saw (printed with -s, and in the screenshots folder)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[where] = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "guesses": seen}
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_pad_in_jupyterlab(served, browser, shots, tmp_path):
    base, root, env = served
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--allow-root",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--expose-app-in-browser",  # window.jupyterapp: run all cells by command
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        f"--LabApp.user_settings_dir={base / 'settings'}",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with server(cmd, url=f"{url}/api/status?token={token}", env=env, log=tmp_path / "lab.log"):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
            )
            page.evaluate(
                """async () => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    await panel.sessionContext.ready;
                    await window.jupyterapp.commands.execute('notebook:run-all-cells');
                }"""
            )
            # Run All moves the selection (and the scroll) from cell to cell: draw once it is done.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-InputPrompt')]"
                ".every(p => !p.textContent.includes('*'))"
            )
            exercise_pad(page, "lab", tmp_path, shots)
            errors = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            )
            assert "Traceback" not in " ".join(errors.all_inner_texts())
        finally:
            page.close()


def test_pad_in_voila(served, browser, shots, tmp_path):
    base, root, env = served
    port = free_port()
    cmd = [
        sys.executable, "-m", "voila", str(root / NOTEBOOK.name), "--no-browser",
        "--Voila.ip=127.0.0.1", f"--port={port}", "--show_tracebacks=True",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    with server(cmd, url=None, port=port, env=env, log=tmp_path / "voila.log"):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url, timeout=TIMEOUT_MS)
            exercise_pad(page, "voila", tmp_path, shots)
        finally:
            page.close()
    if os.environ.get("CHARLIB_REFRESH_SCREENSHOT") == "1":  # on request only: a tracked file
        shutil.copy(shots / "drawing_pad_voila.png", README_SHOT)


SERVED_SHOT = ROOT / "docs" / "served_pad.png"


@pytest.fixture(scope="module")
def saved_to(served) -> Path:
    """Where the served page saves corrected drawings with `--save-to` alone: data/mine of the
    server's project (CHARLIB_DATA_DIR, a temporary folder here)."""
    return Path(served[2]["CHARLIB_DATA_DIR"]) / "mine"


@pytest.fixture(scope="module")
def charlib_server(served, saved_to, tmp_path_factory):
    """`python -m charlib serve --save-to ...` on a free port with the module's run; stopped
    at the end."""
    base, _, env = served
    port = free_port()
    run = next((base / "runs").iterdir())
    cmd = [sys.executable, "-m", "charlib", "serve", "--run", str(run), "--port", str(port)]
    cmd += ["--save-to"]  # alone: data/mine (here `saved_to`)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with server(cmd, url=f"{url}/health", env=env, log=log, timeout=120):
        yield url


def test_served_pad_saves_a_corrected_drawing(charlib_server, saved_to, browser):
    """Draw, see the guesses, type the right character, Save: the drawing lands in
    <save-to>/<code>/ as PNG + strokes, and the page shows the count."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(charlib_server + "/")
        teach = page.locator(".charlib-teach")
        sync_api.expect(teach).to_be_visible()
        sync_api.expect(page.locator(".charlib-counts")).to_contain_text("none saved yet")
        draw(page, page.locator(".charlib-canvas"), SCRIPTED["7"])
        rows = page.locator(".charlib-results .charlib-prediction")
        sync_api.expect(rows).to_have_count(5, timeout=20_000)
        top = rows.nth(0).get_attribute("data-char")
        page.locator(".charlib-save").click()  # no character chosen yet: refused, nothing saved
        sync_api.expect(page.locator(".charlib-saved")).to_contain_text("choose the right")
        assert not saved_to.exists() or not any(saved_to.iterdir())
        rows.nth(1).click()  # picking a guess fills the box; then the user types the right one
        assert page.locator(".charlib-label").input_value() == rows.nth(1).get_attribute(
            "data-char"
        )
        page.locator(".charlib-label").fill("7")
        page.locator(".charlib-save").click()
        sync_api.expect(page.locator(".charlib-saved")).to_have_text("saved as 55/00001.png")
        sync_api.expect(page.locator(".charlib-counts")).to_contain_text("7 ×1")
    finally:
        page.close()
    png, strokes = saved_to / "55" / "00001.png", saved_to / "55" / "00001.json"
    assert png.is_file() and strokes.is_file()
    record = json.loads(strokes.read_text())
    assert record["label"] == "7" and len(record["drawing"]["strokes"]) == 1
    assert record["note"]["guess"] == top  # the model's answer is kept beside the right one


def test_pad_served_by_charlib(charlib_server, browser, shots, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.set_default_timeout(TIMEOUT_MS)
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    try:
        page.goto(charlib_server + "/")
        sync_api.expect(page.locator(".charlib-footer")).to_contain_text("classes")
        seen = exercise_pad(page, "served", tmp_path, shots)
        assert {len(guesses) for guesses in seen.values()} == {5}
    finally:
        page.close()
    assert not console, f"errors in the page's console: {console}"
    if os.environ.get("CHARLIB_REFRESH_SCREENSHOT") == "1":  # on request only: a tracked file
        shutil.copy(shots / "drawing_pad_served.png", SERVED_SHOT)


def test_served_pad_draws_with_touch(charlib_server, browser):
    """A finger's stroke (touch events, as a phone sends them) draws and predicts."""
    context = browser.new_context(viewport={"width": 500, "height": 800}, has_touch=True)
    page = context.new_page()
    try:
        page.goto(charlib_server + "/")
        canvas = page.locator(".charlib-canvas")
        box = settled_box(canvas)
        cdp = context.new_cdp_session(page)
        path = [(0.5, 0.15), (0.5, 0.4), (0.5, 0.6), (0.5, 0.85)]  # a '1' top to bottom
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
        for kind, (x, y) in zip(
            ["touchStart"] + ["touchMove"] * (len(points) - 1), points, strict=True
        ):
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        sync_api.expect(page.locator(".charlib-strokes")).to_have_text("1 stroke")
        assert ink(canvas, more_than=500) > 500, "the finger left no ink"
        rows = page.locator(".charlib-results .charlib-prediction")
        sync_api.expect(rows).to_have_count(5, timeout=20_000)  # predicted when the finger lifted
        assert page.evaluate("() => window.scrollY") == 0, "the stroke scrolled the page"
    finally:
        context.close()


def test_served_api_docs_render_offline(charlib_server, browser):
    """/docs is Swagger UI from local files: it renders with every other host blocked."""
    page = browser.new_page()
    outside = []

    def only_local(route):
        if route.request.url.startswith(charlib_server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", only_local)
        page.goto(charlib_server + "/docs")
        paths = page.locator(".opblock-summary-path")
        sync_api.expect(paths).to_have_count(6, timeout=20_000)  # /mine: POST and GET
        assert set(paths.all_inner_texts()) == {
            "/predict", "/predict/batch", "/health", "/classes", "/mine"
        }  # fmt: skip
    finally:
        page.close()
    assert not outside, f"/docs asked other hosts for {outside}"
