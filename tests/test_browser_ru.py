"""The Russian edition in a real browser: ``bootstrap lab --lang ru``, JupyterLab, Validate.

What a Russian-speaking student does: start the course with ``--lang ru`` (headless here, on
free ports), open the Russian quiz and the Russian ``sql_overfitting`` (and a Russian lesson,
when ``translations/ru/EDITION.json`` lists one), run cells, press Validate. The checks must
answer in Russian in the cell outputs and in nbgrader's Validate dialog. Screenshots go to
``build/screenshots/ru/`` (git-ignored); the notebooks JupyterLab saves are restored byte for
byte afterwards, as in ``tests/test_browser.py`` (whose helpers this test reuses).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.handout import editions
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAB_SETTINGS,
    UI_TIMEOUT_MS,
    _free_port,
    _menu,
    _open_notebook,
    _sources,
    _stop,
    _wait_for_server,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots" / "ru"
TRANSLATED = editions.translated(ROOT)
GRADED = ("quiz", "sql_overfitting")
#: the first translated lesson (not a graded notebook), if any is listed at run time
LESSON = next((n for n in TRANSLATED if n not in GRADED), None)


def _rel(name: str) -> str:
    return f"ru/{name}/{name}.ipynb"


@pytest.fixture(scope="module")
def lab_ru(tmp_path_factory) -> Iterator[str]:
    """``python3 -m tunelab.bootstrap lab --headless --lang ru``; yields the base URL."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("lab-ru")
    settings = tmp / "settings"
    for rel, content in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    names = [n for n in (*GRADED, LESSON, "09_real_training") if n]
    watched = [ROOT / "notebooks" / _rel(n) for n in names]
    saved = {path: path.read_bytes() for path in watched if path.exists()}
    checkpoints = [p.parent / ".ipynb_checkpoints" for p in watched]
    had_checkpoints = {p: p.exists() for p in checkpoints}
    config = tmp / "config"
    config.mkdir()
    port, emulator_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "TUNELAB_TIME_SCALE": "2000",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TUNELAB_ENDPOINT", None)
    env.pop("TUNELAB_LANG", None)  # the --lang flag alone must choose Russian
    python = shutil.which("python3") or sys.executable
    cmd = [python, "-m", "tunelab.bootstrap", "lab", "--headless", "--lang", "ru"]
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
            if current != content and _sources(current) == _sources(content):
                path.write_bytes(content)
        for path, existed in had_checkpoints.items():
            if not existed and path.exists():
                shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser_ru(lab_ru):
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
def page(browser_ru):
    context = browser_ru.new_context(viewport={"width": 1400, "height": 1000}, locale="ru-RU")
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _markdown(page, text: str) -> None:
    """Wait for a rendered markdown cell of the notebook holding ``text``."""
    cell = page.locator(".jp-NotebookPanel .jp-MarkdownOutput", has_text=text).first
    cell.wait_for(state="visible")


def _run_cell(page, containing: str, *, output: bool = True) -> str:
    """Run the code cell whose text contains ``containing``; return its output text."""
    cell = page.locator(".jp-CodeCell", has_text=containing).first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    if output:
        cell.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    else:  # a cell that prints nothing: it ran once its prompt shows an execution count
        page.wait_for_function(
            "cell => /\\[\\d+\\]/.test(cell.querySelector('.jp-InputPrompt').innerText)",
            arg=cell.element_handle(),
        )
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")
    return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())


def _validate(page, name: str) -> tuple[str, str]:
    button = page.locator(".validate-button:visible").first
    button.wait_for(state="visible")
    button.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible")
    title = dialog.locator(".jp-Dialog-header").inner_text()
    body = dialog.locator(".jp-Dialog-body").inner_text()
    _screenshot(page, name)
    dialog.get_by_role("button", name=re.compile("OK", re.I)).first.click()
    dialog.wait_for(state="detached")
    return title, body


def _need(name: str) -> None:
    if name not in TRANSLATED:
        pytest.skip(f"{name} has no Russian edition (translations/ru/EDITION.json)")
    if not (ROOT / "notebooks" / _rel(name)).is_file():
        pytest.fail(f"notebooks/{_rel(name)} missing: run `python -m grader release`")


def test_russian_quiz_check_and_validate_speak_russian(lab_ru, page):
    _need("quiz")
    _open_notebook(page, lab_ru, _rel("quiz"))
    _markdown(page, "Вопрос 1")
    _run_cell(page, "answers: dict[str, str] = {}", output=False)  # the setup cell
    out = _run_cell(page, 'check_format("q1")')
    assert "Ответа на q1 пока нет" in out, out[:2000]
    _screenshot(page, "quiz_check.png")
    title, body = _validate(page, "quiz_validate.png")
    assert title.strip() == "Validation Results", f"{title}: {body[:1000]}"
    assert re.search(r"The following cells? failed|VALIDATION FAILED", body), body[:2000]
    assert "Ответа на q1 пока нет" in body or "Проверка q1" in body, body[:2000]


def test_russian_sql_overfitting_runs_and_validates_in_russian(lab_ru, page):
    _need("sql_overfitting")
    _open_notebook(page, lab_ru, _rel("sql_overfitting"))
    _markdown(page, "Оцениваемое задание")
    _menu(page, "Run", "Run All Cells")  # stops at part 1's unfilled answer cell
    setup = page.locator(".jp-CodeCell", has_text="tunelab.connect(time_scale=100_000)").first
    setup.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")
    out = "\n".join(setup.locator(".jp-OutputArea-output").all_inner_texts())
    assert "отложенных примеров" in out and "первая модель: ACTIVE" in out, out[:2000]
    _run_cell(page, 'DIAGNOSIS = "..."')  # the stub: NotImplementedError, nothing defined
    out = _run_cell(page, "checks.check_diagnosis(DIAGNOSIS)")
    assert "DIAGNOSIS" in out, out[:2000]  # NameError: the answer cell defined nothing
    _screenshot(page, "sql_overfitting_cells.png")
    title, body = _validate(page, "sql_overfitting_validate.png")
    assert title.strip() == "Validation Results", f"{title}: {body[:1000]}"
    assert re.search(r"The following cells? failed|VALIDATION FAILED", body), body[:2000]
    assert "Проверка 1" in body, body[:2000]  # the failing check cells, as the student sees them


def test_russian_lesson_opens_in_russian(lab_ru, page):
    if LESSON is None:
        pytest.skip("no Russian lesson is listed in translations/ru/EDITION.json yet")
    _need(LESSON)
    _open_notebook(page, lab_ru, _rel(LESSON))
    _menu(page, "Run", "Run All Cells")
    page.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(state="visible")
    text = page.locator(".jp-Notebook").inner_text()
    assert re.search("[а-яА-Я]{4,}", text), text[:2000]
    _screenshot(page, f"{LESSON}_run.png")
    title, body = _validate(page, f"{LESSON}_validate.png")
    assert title.strip() == "Validation Results", f"{title}: {body[:1000]}"


def test_russian_real_training_lesson_runs_in_russian(lab_ru, page):
    """Lesson 09's Russian edition: real training in the kernel, checks and plots in Russian."""
    from tests.test_browser import run_real_training_lesson

    _need("09_real_training")
    folder = ROOT / "notebooks" / "ru" / "09_real_training"
    before = set(folder.iterdir())
    try:
        text = run_real_training_lesson(lab_ru, page, _rel("09_real_training"), "✔ расхождение")
        assert "✔ четыре рецепта" in text and "✔ переобучение" in text, text[:3000]
        assert "точность на валидации" in text and "недообучение:" in text, text[:3000]
        assert "✔ four recipes" not in text and "validation accuracy" not in text, text[:3000]
        _screenshot(page, "09_real_training_run.png")
    finally:
        for path in set(folder.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
