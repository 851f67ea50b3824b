"""End to end in a real browser: the README's main command, JupyterLab, a lesson, Validate.

Why: every other test drives Python directly. A student meets the course through
``python3 -m tunelab.bootstrap lab`` and a browser, where other things can break: the server
must start, the emulator must be reachable from the kernel, widgets and plots must render,
and nbgrader's Validate button must answer. This test starts that exact command headless,
drives Debian's chromium with Playwright, and keeps a screenshot of what it saw
(``build/screenshots/``, git-ignored).

The notebooks JupyterLab saves (nbgrader's Validate saves first) are restored byte for byte
afterwards, so the committed student copies are never changed by a test run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LESSON = "03_launching/03_launching.ipynb"
GRADED = "quiz/quiz.ipynb"
PANEL_LESSON = "02_hyperparameters/02_hyperparameters.ipynb"
SCREENSHOTS = ROOT / "build" / "screenshots"
#: Generous: a cold JupyterLab on a busy 2-core machine can take a while.
SERVER_TIMEOUT = 180
UI_TIMEOUT_MS = 180_000

#: JupyterLab user settings for the test session: no autosave (the test restores files
#: anyway), no news pop-up, and every cell rendered (no windowing) so outputs are in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _sources(raw: bytes) -> list[tuple[str, str]]:
    """The cells of a notebook file as (type, source), ignoring outputs and metadata."""
    cells = json.loads(raw)["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the lab command exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"JupyterLab did not answer {url} within {SERVER_TIMEOUT} s:\n{log.read_text()[-3000:]}"
    )


def _stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group (bootstrap, JupyterLab, kernels, emulator)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Anything else left in the group (a kernel that ignored SIGINT) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """The README's main command, headless on free ports; yields the JupyterLab base URL."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("lab")
    settings = tmp / "settings"
    for rel, content in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    watched = [ROOT / "notebooks" / rel for rel in (LESSON, GRADED, PANEL_LESSON, REAL_LESSON)]
    saved = {path: path.read_bytes() for path in watched if path.exists()}
    checkpoints = [p.parent / ".ipynb_checkpoints" for p in watched]
    had_checkpoints = {p: p.exists() for p in checkpoints}

    # An empty config dir of its own, so a developer's ~/.jupyter cannot change the result.
    # (CI runs as root: the README command itself must cope with that.)
    config = tmp / "config"
    config.mkdir()

    port, emulator_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "TUNELAB_TIME_SCALE": "2000",  # tuning jobs finish in a fraction of a second
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TUNELAB_ENDPOINT", None)
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "tunelab.bootstrap", "lab", "--headless"]
    # no token: each test opens a fresh browser context (test_bootstrap_lab.py checks the default)
    cmd += ["--token", ""]
    cmd += ["--port", str(port), "--emulator-port", str(emulator_port)]
    log = tmp / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status", proc, log)
        yield base
    finally:
        _stop(proc)
        for path, content in saved.items():
            current = path.read_bytes()
            # Put back only what JupyterLab changed (outputs, metadata): same cell sources. A
            # different source means someone regenerated the file meanwhile; keep theirs.
            if current != content and _sources(current) == _sources(content):
                path.write_bytes(content)
        for path, existed in had_checkpoints.items():
            if not existed and path.exists():
                shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / name)
    return shot


def _open_notebook(page, base: str, rel: str) -> None:
    # ?reset: start from an empty workspace, not with the tabs of the previous test open.
    page.goto(f"{base}/lab/tree/{rel}?reset", wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
    # The kernel must be up before we run anything: the status bar says "Idle".
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$")).first.click()


def test_lesson_runs_in_jupyterlab_and_shows_the_loss_plot(lab, page, tmp_path):
    _open_notebook(page, lab, LESSON)
    _menu(page, "Run", "Run All Cells")
    # The lesson's first loss plot comes before its first practice cell (whose unfilled
    # stub stops "Run All"), so it must appear.
    plot = page.locator(".jp-OutputArea-output img").first
    plot.wait_for(state="visible")
    plot.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 200", arg=plot.element_handle()
    )
    box = plot.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100, box
    # The cells before the plot really ran against the emulator.
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    text = "\n".join(outputs)
    assert "KeyError: 'text_input'" in text, text[:2000]
    assert "tunedModels/tech-support-v1 is ACTIVE" in text, text[:2000]
    shot = _screenshot(page, tmp_path, "lesson03_loss_plot.png")
    assert shot.stat().st_size > 10_000


def test_validate_button_shows_its_result_dialog(lab, page, tmp_path):
    rel = GRADED if (ROOT / "notebooks" / GRADED).exists() else LESSON
    _open_notebook(page, lab, rel)
    button = page.locator(".validate-button:visible").first
    button.wait_for(state="visible")
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible")
    title = dialog.locator(".jp-Dialog-header").inner_text()
    body = dialog.locator(".jp-Dialog-body").inner_text()
    _screenshot(page, tmp_path, "validate_dialog.png")
    assert title.strip() == "Validation Results", f"{title}: {body[:1000]}"
    # A freshly released notebook has unanswered cells: nbgrader lists each failing check
    # ("The following cell failed: ...") with the hint the check raised.
    assert re.search(r"The following cells? failed|VALIDATION FAILED", body), body[:2000]
    assert "Error" in body, body[:2000]
    dialog.get_by_role("button", name=re.compile("OK", re.I)).first.click()
    dialog.wait_for(state="detached")


def test_hyperparameter_panel_redraws_when_a_slider_moves(lab, page, tmp_path):
    """Lesson 02's panel in a real frontend: move a slider, get a new plot and verdict."""
    _open_notebook(page, lab, PANEL_LESSON)
    _menu(page, "Run", "Run All Cells")  # stops at the first unfilled practice cell
    page.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")
    cell = page.locator(".jp-CodeCell", has_text="hp_panel = HyperparameterPanel()").first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")  # command mode, then run just this cell
    page.keyboard.press("Control+Enter")
    image = cell.locator("img.widget-image")
    image.wait_for(state="visible")
    summary = cell.locator(".widget-html")
    summary.wait_for(state="visible")
    before_src, before_text = image.get_attribute("src"), summary.inner_text()
    assert "best epoch" in before_text, before_text
    handle = cell.locator(".tunelab-learning-rate-multiplier .noUi-handle")
    handle.focus()
    started = time.monotonic()
    for _ in range(5):  # 1.0 -> 1.5 -> 2.0 -> 3.0 -> 4.0 -> 6.0
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([img, src]) => img.getAttribute('src') !== src",
        arg=[image.element_handle(), before_src],
    )
    page.wait_for_function(
        "([el, text]) => el.innerText !== text", arg=[summary.element_handle(), before_text]
    )
    seconds = time.monotonic() - started
    after_text = summary.inner_text()
    print(f"panel: slider change to new plot in the browser: {seconds * 1000:.0f} ms")
    assert after_text != before_text
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")  # all redraws done
    readouts = cell.locator(".widget-readout").all_inner_texts()
    assert "6.0" in readouts, f"the multiplier readout should show 6.0, readouts: {readouts}"
    cell.scroll_into_view_if_needed()
    _screenshot(page, tmp_path, "lesson02_panel.png")


VERTEX_LESSON = "08_vertex_ai/08_vertex_ai.ipynb"
TO_CONTENTS = """def to_contents(row: dict) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": row["text_input"]}]},
            {"role": "model", "parts": [{"text": row["output"]}]},
        ]
    }"""


def test_vertex_lesson_trains_and_plots_in_jupyterlab(lab, page, tmp_path):
    """Lesson 08 as a student meets it: answer the first practice cell in the browser, run
    all, and the Vertex AI job on the emulator succeeds and its loss curves are drawn."""
    folder = (ROOT / "notebooks" / VERTEX_LESSON).parent
    if not folder.exists():
        pytest.skip("no lesson 08 in notebooks/")
    before = set(folder.iterdir())
    try:
        _run_vertex_lesson(lab, page, tmp_path)
    finally:  # the lesson writes its JSONL files beside the notebook, as a student's would
        for path in set(folder.iterdir()) - before:
            if path.is_dir():  # e.g. JupyterLab's .ipynb_checkpoints
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _run_vertex_lesson(lab, page, tmp_path) -> None:
    _open_notebook(page, lab, VERTEX_LESSON)
    cell = page.locator(".jp-CodeCell", has_text="def to_contents").first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(TO_CONTENTS)
    page.keyboard.press("Escape")
    _menu(page, "Run", "Run All Cells")
    # The loss plot comes before the next practice cell, whose unfilled stub stops "Run All".
    plot = page.locator(".jp-OutputArea-output img").first
    plot.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    plot.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 200", arg=plot.element_handle()
    )
    text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "JOB_STATE_SUCCEEDED" in text, text[:3000]
    assert "Agent Platform: True" in text, text[:3000]  # enterprise=True (vertexai alias)
    shot = _screenshot(page, tmp_path, "lesson08_vertex_loss_plot.png")
    assert shot.stat().st_size > 10_000


REAL_LESSON = "09_real_training/09_real_training.ipynb"
#: Lesson 09's first practice cell, answered (its first line is kept from the released cell).
RECIPES = """HEALTHY = dict(
    examples=1200, epochs=8, batch_size=16, learning_rate=0.01, dirty_share=0.0
)
recipes = {
    "underfitting": {**HEALTHY, "learning_rate": 0.0003},
    "overfitting": {
        **HEALTHY, "examples": 100, "epochs": 30, "batch_size": 8, "learning_rate": 0.03
    },
    "divergence": {**HEALTHY, "epochs": 12, "batch_size": 32, "learning_rate": 0.2},
    "no_convergence": {**HEALTHY, "dirty_share": 0.8},
}"""


def run_real_training_lesson(base: str, page, rel: str, done: str) -> str:
    """Lesson 09 as a student meets it: answer the first practice cell in the browser, run all;
    real training draws its curves and the check after the five runs prints ``done``. Returns
    the text of all outputs. (Shared with the Russian edition's test.)"""
    _open_notebook(page, base, rel)
    cell = page.locator(".jp-CodeCell", has_text="HEALTHY = dict(").first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(RECIPES)
    page.keyboard.press("Escape")
    _menu(page, "Run", "Run All Cells")
    # Run All stops at the next practice cell (its stub raises), after the five real runs.
    page.get_by_text(done).first.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")
    plots = page.locator(".jp-OutputArea-output img")
    assert plots.count() >= 2, "the healthy run's plot and the five runs' plots"
    five = plots.nth(1)
    five.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 1000", arg=five.element_handle()
    )
    return "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())


def test_real_training_lesson_runs_in_jupyterlab(lab, page, tmp_path):
    """Lesson 09 trains real networks in the student's kernel and draws the five patterns."""
    folder = (ROOT / "notebooks" / REAL_LESSON).parent
    if not folder.exists():
        pytest.skip("no lesson 09 in notebooks/")
    before = set(folder.iterdir())
    try:
        text = run_real_training_lesson(lab, page, REAL_LESSON, "✔ divergence")
        assert "✔ four recipes" in text and "✔ overfitting" in text, text[:3000]
        assert "validation accuracy 100.0%" in text, text[:3000]
        shot = _screenshot(page, tmp_path, "lesson09_real_training.png")
        assert shot.stat().st_size > 10_000
    finally:
        for path in set(folder.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
