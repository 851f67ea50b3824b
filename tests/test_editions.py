"""The Russian edition: built from the English masters and `translations/ru/`, graded alike.

What must hold for every notebook listed in ``translations/ru/EDITION.json`` (and only those:
a notebook is listed once its translation is complete):

* the catalogue fits its master: every markdown cell translated, no entry stale (made for
  another English text; the failure names the cell), no fragment that matches nothing;
* both editions (the masters and the committed releases in ``notebooks/`` and
  ``notebooks/ru/``) have the same cells, the same code once comments and string literals
  are blanked, the same grade ids, points and nbgrader flags;
* no English prose is left (runs of 4+ English words outside code spans, allow-listed names
  aside);
* the Russian master runs offline top to bottom like the English one;
* a Russian submission is autograded with the same checks to the same score as the English
  submission with the same answers, its feedback is Russian, and the run record names its
  edition.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

from grader.handout import editions
from tunelab import i18n

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = editions.translated(ROOT)
#: product, API and UI names that may stay in English inside Russian prose
ALLOWED = (
    "Google AI Studio",
    "Run All Cells",
    "Restart Kernel and Run All Cells",
    "JSON Lines",
    "Gemini Enterprise Agent Platform",  # a product name (formerly Vertex AI)
    # prompts sent to the emulator, whose task domains (and training data) are English
    "How do I clear a paper jam in my PrintPro 450?",
)
ENGLISH_RUN = re.compile(r"\b[A-Za-z][a-z']*(?:[ ,;:]+[A-Za-z][a-z']*){3,}\b")


def master(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)


def edition(name: str) -> tuple[nbformat.NotebookNode, editions.Report]:
    return editions.build_edition(master(name), editions.load_catalogue(name, ROOT))


def test_edition_list_names_real_notebooks() -> None:
    assert TRANSLATED, "translations/ru/EDITION.json lists no translated notebook"
    for name in TRANSLATED:
        assert (ROOT / "solutions" / name / f"{name}.ipynb").is_file(), name
        assert (ROOT / "translations" / "ru" / f"{name}.json").is_file(), name


@pytest.mark.parametrize("name", TRANSLATED)
def test_catalogue_is_complete_and_fresh(name: str) -> None:
    _, report = edition(name)
    problems = report.problems()
    assert not problems, f"translations/ru/{name}.json:\n  " + "\n  ".join(problems)


def _nbgrader(cell) -> str:
    meta = dict(cell.metadata.get("nbgrader", {}))
    meta.pop("checksum", None)
    return json.dumps(meta, sort_keys=True)


def _same_structure(en, ru, where: str) -> None:
    assert len(en.cells) == len(ru.cells), f"{where}: {len(en.cells)} vs {len(ru.cells)} cells"
    for i, (a, b) in enumerate(zip(en.cells, ru.cells, strict=True)):
        label = f"{where}, cell {i} ({editions.cell_key(a)})"
        assert a.cell_type == b.cell_type, label
        assert _nbgrader(a) == _nbgrader(b), f"{label}: nbgrader metadata differs"
        if a.cell_type == "code":
            assert editions.code_view(a.source) == editions.code_view(b.source, "ru"), (
                f"{label}: the code differs (beyond comments and string literals)"
            )


@pytest.mark.parametrize("name", TRANSLATED)
def test_master_editions_have_the_same_code_and_grading(name: str) -> None:
    ru, _ = edition(name)
    _same_structure(master(name), ru, f"{name} master")
    assert ru.metadata["tunelab"]["lang"] == "ru"


@pytest.mark.parametrize("name", TRANSLATED)
def test_released_editions_have_the_same_code_and_grading(name: str) -> None:
    en_path = ROOT / "notebooks" / name / f"{name}.ipynb"
    ru_path = ROOT / "notebooks" / "ru" / name / f"{name}.ipynb"
    assert ru_path.is_file(), f"{ru_path.relative_to(ROOT)} missing: run `python -m grader release`"
    en, ru = nbformat.read(en_path, as_version=4), nbformat.read(ru_path, as_version=4)
    _same_structure(en, ru, f"notebooks/ru/{name}")


def _prose(text: str) -> str:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    for name in ALLOWED:
        text = text.replace(name, " ")
    return text


def english_runs(text: str) -> list[str]:
    """Runs of four or more English words in prose (code spans and allowed names removed)."""
    return [m.group(0) for m in ENGLISH_RUN.finditer(_prose(text))]


def _code_prose(source: str) -> list[str]:
    """Comments and string literals with spaces; an f-string's ``{fields}`` are code, not prose."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT or tok.type == tokenize.STRING and " " in tok.string:
            text = tok.string
            prefix = re.match(r"[A-Za-z]*", text).group(0)
            if tok.type == tokenize.STRING and "f" in prefix.lower():
                text = re.sub(r"\{[^{}]*\}", " ", text)
            out.append(text)
    return out


@pytest.mark.parametrize("name", TRANSLATED)
def test_no_english_prose_left(name: str) -> None:
    ru, _ = edition(name)
    left = []
    for cell in ru.cells:
        texts = [cell.source] if cell.cell_type == "markdown" else _code_prose(cell.source)
        for text in texts:
            if "BEGIN SOLUTION" in text or "END SOLUTION" in text:
                continue
            left += [f"{editions.cell_key(cell)}: {run!r}" for run in english_runs(text)]
    assert not left, "English left in the Russian edition:\n  " + "\n  ".join(left)


def test_english_detector() -> None:
    assert english_runs("Run the setup cell below and check")
    assert not english_runs("Выполните `answers['q1'] = 'run this cell now'` ниже")
    assert not english_runs("нажмите *Run → Run All Cells* и Google AI Studio")


def test_stale_entry_is_named() -> None:
    nb = master(TRANSLATED[0])
    catalogue = json.loads(json.dumps(editions.load_catalogue(TRANSLATED[0], ROOT)))
    key = next(iter(catalogue["cells"]))
    catalogue["cells"][key]["en_sha"] = "0" * 16
    _, report = editions.build_edition(nb, catalogue)
    assert key in report.stale


def test_code_translation_touches_comments_and_strings_only() -> None:
    source = 'x = df["step"]  # the step\nax.set_xlabel("step")\nprint(f"{n} steps done")\n'
    new, used = editions.translate_code(
        source,
        {"# the step": "# шаг", 'set_xlabel||"step"': '"шаг"', "steps done": "шагов готово"},
    )
    assert new == 'x = df["step"]  # шаг\nax.set_xlabel("шаг")\nprint(f"{n} шагов готово")\n'
    assert len(used) == 3
    assert editions.code_view(source) == editions.code_view(new)


def test_i18n_language_choice(monkeypatch) -> None:
    monkeypatch.setattr(i18n, "_chosen", None)
    monkeypatch.delenv("TUNELAB_LANG", raising=False)
    assert i18n.get_language() == "en"
    monkeypatch.setenv("TUNELAB_LANG", "ru_RU.UTF-8")
    assert i18n.tr("hi {x}", "привет {x}", x=1) == "привет 1"
    assert i18n.tr("hi", "привет", "en") == "hi"
    i18n.set_language("en")
    assert i18n.get_language() == "en"
    with pytest.raises(ValueError):
        i18n.set_language("xx")


def test_quiz_explanations_exist_in_both_languages() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_quiz_checker", ROOT / "solutions/quiz/checker.py"
    )
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    assert checker.CORRECT.keys() == checker.CORRECT_RU.keys()
    for qid, wrong in checker.WHY_WRONG.items():
        assert wrong.keys() == checker.WHY_WRONG_RU[qid].keys(), qid
    for en, ru in [*checker.Q11_WHY.values(), checker.REREAD_COST, checker.REREAD_PLATEAU]:
        assert en.strip() and ru.strip() and en != ru


@pytest.mark.skipif("quiz" not in TRANSLATED, reason="the quiz is not translated")
def test_quiz_visible_check_speaks_the_edition_language(monkeypatch) -> None:
    from tunelab.checks import quiz

    monkeypatch.setattr(i18n, "_chosen", "ru")
    with pytest.raises(AssertionError, match="Ответа на q1 пока нет"):
        quiz.check_format({}, "q1")
    assert "одна буква" in quiz.format_problem("q2", 5, "ru")
    assert "one letter" in quiz.format_problem("q2", 5, "en")


# -- graded like the English one (that it runs: test_russian_runtime.py) ----------------------
@pytest.mark.skipif("quiz" not in TRANSLATED, reason="the quiz is not translated")
def test_russian_quiz_submission_scores_like_the_english_one(tmp_path: Path) -> None:
    from tests.test_assignments import Course, master_path, with_solutions
    from tunelab.checks import quiz as Q

    course = Course.create(tmp_path / "course", assignments=("quiz",))
    course.generate("quiz")

    def answers(student: str) -> dict[str, str]:
        """The same choices (q1 wrong, q2 right, q11 one pass: wrong) in each one's variant."""
        row = Q.variant_row(student, "q11")
        one_pass = Q.letter_for(student, "q11", row["values"].index(row["tokens"]))
        return {
            "q1-answer": f'answers["q1"] = "{Q.letter_for(student, "q1", 0)}"',
            "q2-answer": f'answers["q2"] = "{Q.letter_for(student, "q2", 1)}"',
            "q11-answer": f'answers["q11"] = "{one_pass.upper()}"',
        }

    en = with_solutions(nbformat.read(master_path("quiz"), as_version=4), answers("english"))
    ru = with_solutions(edition("quiz")[0], answers("russian"))
    course.submit("quiz", "english", en)
    course.submit("quiz", "russian", ru)
    run = course.autograde("quiz")
    results = {r.student: r for r in run.results}
    assert results["english"].status == results["russian"].status == "graded"
    assert results["english"].parts == results["russian"].parts
    assert results["english"].score == results["russian"].score
    assert (results["english"].edition, results["russian"].edition) == ("en", "ru")
    assert results["russian"].notes == results["english"].notes, results["russian"].notes
    record = json.loads(run.record.read_text())
    assert {r["student"]: r["edition"] for r in record["results"]} == {
        "english": "en",
        "russian": "ru",
    }
    graded = course.autograded_notebook("quiz", "russian")
    by_id = {editions.cell_key(c): c for c in graded.cells}
    verdict = "".join(o.get("evalue", "") + o.get("text", "") for o in by_id["q1-check"].outputs)
    assert "не лучший ответ" in verdict and "Перечитайте" in verdict, verdict
    assert "верно" in "".join(o.get("text", "") for o in by_id["q2-check"].outputs)
    assert by_id["q1-question"].source.startswith("## Вопрос 1"), "feedback lost the translation"
    english = course.autograded_notebook("quiz", "english")
    en_verdict = [c for c in english.cells if editions.cell_key(c) == "q1-check"][0]
    assert "is not the best answer" in en_verdict.outputs[-1]["evalue"]


# -- sql_overfitting: messages in the edition's language ----------------------------------------
def test_section_titles_are_one_table() -> None:
    """``translations/ru/SECTION_TITLES.json`` (for the lesson translators) is the table the
    checks use, and every «title» named in Russian by the quiz or sql_overfitting is in it."""
    table = json.loads((ROOT / "translations/ru/SECTION_TITLES.json").read_text(encoding="utf-8"))
    assert table["titles"] == i18n.SECTION_TITLES_RU
    known = {t for titles in i18n.SECTION_TITLES_RU.values() for t in titles.values()}
    sources = [
        ROOT / "solutions/quiz/checker.py",
        ROOT / "solutions/sql_overfitting/checker.py",
        ROOT / "tunelab/checks/sql_overfitting.py",
        ROOT / "translations/ru/sql_overfitting.json",
    ]
    for path in sources:
        text = path.read_text(encoding="utf-8").replace("\\n", " ")  # JSON line breaks
        text = re.sub(r'"\s*\n\s*"', "", text)  # implicitly joined literals
        for title in re.findall(r"раздел[а-я]* «([^»]+)»", text):
            title = " ".join(title.split())
            if "{" not in title:
                assert title in known, f"{path.name}: «{title}» is not in SECTION_TITLES.json"


@pytest.mark.skipif("sql_overfitting" not in TRANSLATED, reason="sql_overfitting not translated")
def test_sql_overfitting_judges_speak_the_edition_language(monkeypatch) -> None:
    from tunelab.checks import sql_overfitting as sql
    from tunelab.checks import wire

    bad = {"epoch_count": 500, "batch_size": 4, "learning_rate": 0.001}
    assert "is outside the limits 1-100" in sql.judge_next_run_format(bad, "en")
    assert "выходит за пределы 1–100" in sql.judge_next_run_format(bad, "ru")
    assert sql.reread_monitoring("en") == sql.REREAD_MONITORING
    assert sql.reread_monitoring("ru") == (
        "Перечитайте урок 04_monitoring, раздел «Как распознать переобучение»."
    )
    raised = wire.Raised("ValueError", "boom")
    assert "возникло исключение ValueError" in sql.judge_accuracy(raised, 0.5, "Тест", "ru")
    monkeypatch.setattr(i18n, "_chosen", "ru")  # what the Russian edition's first cell does
    with pytest.raises(AssertionError, match="Ответ должен быть одним из"):
        sql.check_diagnosis("overfit")
    assert sql.judge_label("healthy") is None
    assert sql.judge_optional_epoch(4, 3, "на примере", "best_epoch") == (
        "best_epoch на примере: ожидалась эпоха 3; получено 4."
    )


@pytest.mark.skipif("sql_overfitting" not in TRANSLATED, reason="sql_overfitting not translated")
def test_russian_sql_submission_scores_like_the_english_one(tmp_path: Path) -> None:
    """The same answers (parts 4 and 6 wrong) in both editions: same parts and score, the
    Russian feedback in Russian with the Russian section titles, the English one unchanged."""
    from tests.test_assignments import Course, master_path, with_solutions

    name = "sql_overfitting"
    course = Course.create(tmp_path / "course", assignments=(name,))
    course.generate(name)
    answers = {
        "p4-answer": 'DIAGNOSIS = "divergence"',
        "p6-answer": 'next_run = {"epoch_count": 20, "batch_size": 4, "learning_rate": 0.001}',
    }
    en = with_solutions(nbformat.read(master_path(name), as_version=4), answers)
    ru = with_solutions(edition(name)[0], answers)
    course.submit(name, "english", en)
    course.submit(name, "russian", ru)
    run = course.autograde(name)
    results = {r.student: r for r in run.results}
    assert results["english"].status == results["russian"].status == "graded"
    assert results["english"].parts == results["russian"].parts
    assert results["english"].score == results["russian"].score
    assert (results["english"].edition, results["russian"].edition) == ("en", "ru")

    def verdicts(student: str) -> dict[str, str]:
        graded = course.autograded_notebook(name, student)
        return {
            editions.cell_key(c): "".join(
                o.get("evalue", "") + o.get("text", "") for o in c.get("outputs", [])
            )
            for c in graded.cells
            if c.cell_type == "code"
        }

    ru_out, en_out = verdicts("russian"), verdicts("english")
    assert "Часть 1 пройдена" in ru_out["p1-check"], ru_out["p1-check"]
    assert "Часть 4 не пройдена" in ru_out["p4-check"], ru_out["p4-check"]
    assert "раздел «Как распознать переобучение»" in ru_out["p4-check"], ru_out["p4-check"]
    assert "Часть 6 не пройдена" in ru_out["p6-check"], ru_out["p6-check"]
    assert "Part 4 failed. DIAGNOSIS = 'divergence' is not right." in en_out["p4-check"]
    assert "Reread 04_monitoring, 'Recognising overfitting'." in en_out["p4-check"]
    assert not re.search("[а-яА-Я]", en_out["p6-check"]), en_out["p6-check"]
