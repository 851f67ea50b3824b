"""End to end in a real browser: the README's main command, JupyterLab, a lesson, Validate.

Why: every other test drives Python directly. A student meets the course through
``python3 -m tunelab.bootstrap lab`` and a browser, where other things can break: the server
must start, the emulator must be reachable from the kernel, widgets and plots must render,
and nbgrader's Validate button must answer. This test starts that exact command headless,
drives Debian's chromium with Playwright, and keeps a screenshot of what it saw
(``build/screenshots/``, git-ignored).

The notebooks JupyterLab saves (nbgrader's Validate saves first) are restored byte for byte
afterwards, so the committed student copies are never changed by a test run. The plumbing
(server, chromium, pages, screenshots) is ``tests/browser_support.py``.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    UI_TIMEOUT_MS,
    chromium,
    lab_server,
    menu,
    new_files_removed,
    notebooks_restored,
    open_notebook,
    page_for,
    replace_cell_text,
    screenshot,
    skip_without_browser,
    validate,
    wait_idle,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
LESSON = "03_launching/03_launching.ipynb"
GRADED = "quiz/quiz.ipynb"
PANEL_LESSON = "02_hyperparameters/02_hyperparameters.ipynb"
VERTEX_LESSON = "08_vertex_ai/08_vertex_ai.ipynb"
REAL_LESSON = "09_real_training/09_real_training.ipynb"
SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """The README's main command, headless on free ports; yields the JupyterLab base URL.
    The notebooks JupyterLab saves are put back afterwards."""
    skip_without_browser()
    watched = [ROOT / "notebooks" / rel for rel in (LESSON, GRADED, PANEL_LESSON, REAL_LESSON)]
    with notebooks_restored(watched), lab_server(tmp_path_factory.mktemp("lab")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(lab):
    """One chromium for the module; each test gets a fresh context (``page``)."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(request, browser):
    yield from page_for(request, browser)


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = screenshot(page, tmp_path, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / name)
    return shot


def test_lesson_runs_in_jupyterlab_and_shows_the_loss_plot(lab, page, tmp_path):
    open_notebook(page, lab, LESSON)
    menu(page, "Run", "Run All Cells")
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
    open_notebook(page, lab, rel)
    title, body = validate(page, SCREENSHOTS, "validate_dialog.png")
    assert title.strip() == "Validation Results", f"{title}: {body[:1000]}"
    # A freshly released notebook has unanswered cells: nbgrader lists each failing check
    # ("The following cell failed: ...") with the hint the check raised.
    assert re.search(r"The following cells? failed|VALIDATION FAILED", body), body[:2000]
    assert "Error" in body, body[:2000]


def test_hyperparameter_panel_redraws_when_a_slider_moves(lab, page, tmp_path):
    """Lesson 02's panel in a real frontend: move a slider, get a new plot and verdict."""
    open_notebook(page, lab, PANEL_LESSON)
    menu(page, "Run", "Run All Cells")  # stops at the first unfilled practice cell
    page.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    wait_idle(page)
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
    wait_idle(page)  # all redraws done
    readouts = cell.locator(".widget-readout").all_inner_texts()
    assert "6.0" in readouts, f"the multiplier readout should show 6.0, readouts: {readouts}"
    cell.scroll_into_view_if_needed()
    _screenshot(page, tmp_path, "lesson02_panel.png")


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
    # The lesson writes its JSONL files beside the notebook, as a student's would.
    with new_files_removed(folder):
        _run_vertex_lesson(lab, page, tmp_path)


def _run_vertex_lesson(lab, page, tmp_path) -> None:
    open_notebook(page, lab, VERTEX_LESSON)
    replace_cell_text(page, "def to_contents", TO_CONTENTS)
    menu(page, "Run", "Run All Cells")
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
    open_notebook(page, base, rel)
    replace_cell_text(page, "HEALTHY = dict(", RECIPES)
    menu(page, "Run", "Run All Cells")
    # Run All stops at the next practice cell (its stub raises), after the five real runs.
    page.get_by_text(done).first.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    wait_idle(page)
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
    with new_files_removed(folder):
        text = run_real_training_lesson(lab, page, REAL_LESSON, "✔ divergence")
        assert "✔ four recipes" in text and "✔ overfitting" in text, text[:3000]
        assert "validation accuracy 100.0%" in text, text[:3000]
        shot = _screenshot(page, tmp_path, "lesson09_real_training.png")
        assert shot.stat().st_size > 10_000
