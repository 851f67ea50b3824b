"""The Russian edition in a real browser: ``bootstrap lab --lang ru``, JupyterLab, Validate.

What a Russian-speaking student does: start the course with ``--lang ru`` (headless here, on
free ports), open the Russian quiz and the Russian ``sql_overfitting`` (and a Russian lesson,
when ``translations/ru/EDITION.json`` lists one), run cells, press Validate. The checks must
answer in Russian in the cell outputs and in nbgrader's Validate dialog. Screenshots go to
``build/screenshots/ru/`` (git-ignored); the notebooks JupyterLab saves are restored byte for
byte afterwards (``tests/browser_support.py`` holds the plumbing; lesson 09's steps are
shared with ``tests/test_browser.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    chromium,
    lab_server,
    menu,
    new_files_removed,
    notebooks_restored,
    open_notebook,
    page_for,
    screenshot,
    skip_without_browser,
    validate,
    wait_idle,
)

from grader import editions

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
    """``python3 -m tunelab.bootstrap lab --headless --lang ru``; yields the base URL. The
    --lang flag alone must choose Russian (the test's environment has no TUNELAB_LANG)."""
    skip_without_browser()
    names = [n for n in (*GRADED, LESSON, "09_real_training") if n]
    watched = [ROOT / "notebooks" / _rel(n) for n in names]
    tmp = tmp_path_factory.mktemp("lab-ru")
    with notebooks_restored(watched), lab_server(tmp, "--lang", "ru") as base:
        yield base


@pytest.fixture(scope="module")
def browser_ru(lab_ru):
    """One chromium for the module; each test gets a fresh Russian-locale context."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(request, browser_ru):
    yield from page_for(request, browser_ru, locale="ru-RU")


def _screenshot(page, name: str) -> None:
    screenshot(page, SCREENSHOTS, name)


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
    wait_idle(page)
    return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())


def _validate(page, name: str) -> tuple[str, str]:
    return validate(page, SCREENSHOTS, name)


def _need(name: str) -> None:
    if name not in TRANSLATED:
        pytest.skip(f"{name} has no Russian edition (translations/ru/EDITION.json)")
    if not (ROOT / "notebooks" / _rel(name)).is_file():
        pytest.fail(f"notebooks/{_rel(name)} missing: run `python -m grader release`")


def test_russian_quiz_check_and_validate_speak_russian(lab_ru, page):
    _need("quiz")
    open_notebook(page, lab_ru, _rel("quiz"))
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
    open_notebook(page, lab_ru, _rel("sql_overfitting"))
    _markdown(page, "Оцениваемое задание")
    menu(page, "Run", "Run All Cells")  # stops at part 1's unfilled answer cell
    setup = page.locator(".jp-CodeCell", has_text="tunelab.connect(time_scale=100_000)").first
    setup.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    wait_idle(page)
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
    open_notebook(page, lab_ru, _rel(LESSON))
    menu(page, "Run", "Run All Cells")
    page.locator(".jp-OutputArea-output").first.wait_for(state="visible")
    wait_idle(page)
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
    with new_files_removed(folder):
        text = run_real_training_lesson(lab_ru, page, _rel("09_real_training"), "✔ расхождение")
        assert "✔ четыре рецепта" in text and "✔ переобучение" in text, text[:3000]
        assert "точность на валидации" in text and "недообучение:" in text, text[:3000]
        assert "✔ four recipes" not in text and "validation accuracy" not in text, text[:3000]
        _screenshot(page, "09_real_training_run.png")
