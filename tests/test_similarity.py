"""The similarity report: a planted copy is flagged, honest classmates are not, pages are inert.

Why: the report is read by an instructor who may confront two students with it, so a false
flag is costly and a missed copy makes shared code pay. It must also be safe to open: every
line in it comes from a submission.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import nbformat
import pytest
from similarity_class import demo_class, honest_submission

from grader.cli import main
from grader.results.sanitize import page_problems
from grader.results.similarity import (
    THRESHOLD,
    answer_code,
    boilerplate_code,
    compare_code,
    compare_quiz,
    quiz_letters,
    write_similarity,
)
from grader.stores.course import REPO, Course

RELEASE = REPO / "notebooks" / "sql_overfitting" / "sql_overfitting.ipynb"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _notebook(cells: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(RELEASE, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid]
    return nb


def _course(tmp_path: Path, students: dict[str, dict[str, str]]) -> Course:
    course = Course.from_env(REPO, tmp_path / "instructor")
    for student, cells in students.items():
        folder = course.submitted / student / "sql_overfitting"
        folder.mkdir(parents=True)
        nbformat.write(_notebook(cells), folder / "sql_overfitting.ipynb")
    return course


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """30 honest, varied submissions and one disguised copy of one of them (31 notebooks)."""
    students, planted = demo_class(31)
    source = planted[0][0] if planted[0][0].startswith("s") else planted[0][1]
    # a student's hostile text in a comment (the copy rewrites comments, the source keeps it)
    students[source]["p1-answer"] += f"\n    # {XSS}"
    course = _course(tmp_path_factory.mktemp("similarity"), students)
    report = write_similarity(course, "sql_overfitting")
    return course, report, planted, source


def test_the_planted_pair_is_flagged_and_no_honest_pair(demo) -> None:
    _, report, planted, _ = demo
    assert len(report.students) == 31 and report.skipped == {}
    flagged = [(p.a, p.b) for p in report.flagged]
    assert flagged == planted, [(p.a, p.b, f"{p.similarity:.2f}") for p in report.flagged]
    copy = report.flagged[0]
    assert copy.share_a > 0.9 and copy.share_b > 0.9
    # the honest pairs stay clearly below the threshold (the closest are listed for scale)
    assert report.context and max(p.similarity for p in report.context) < THRESHOLD - 0.05
    print(
        f"copy {copy.similarity:.2f}; closest honest pair {report.context[0].similarity:.2f}; "
        f"{report.compared_pairs} pairs compared in {report.seconds:.1f} s"
    )


def test_pages_are_inert_and_show_the_code_escaped(demo) -> None:
    _, report, _, source = demo
    pages = [report.index, *[p.page for p in report.flagged]]
    for page in pages:
        text = page.read_text()
        assert page_problems(text) == [], page
        assert "<script" not in text.lower() and "onerror" not in text.lower().replace(
            "onerror=alert", ""
        )
        assert 'http-equiv="Content-Security-Policy"' in text
    pair = report.flagged[0].page.read_text()
    assert source in pair and "<mark>" in pair
    assert "&lt;script&gt;" in pair  # the student's text is shown, as text
    assert report.markdown.read_text().count("|") > 10


def test_release_code_and_blank_submissions_are_not_evidence(tmp_path: Path) -> None:
    """Two blank submissions share every line of the release: nothing to flag."""
    blank = nbformat.read(RELEASE, as_version=4)
    course = Course.from_env(REPO, tmp_path / "instructor")
    for student in ("ann", "bob"):
        folder = course.submitted / student / "sql_overfitting"
        folder.mkdir(parents=True)
        nbformat.write(blank, folder / "sql_overfitting.ipynb")
    report = write_similarity(course, "sql_overfitting")
    assert report.flagged == [] and report.compared_pairs == 0


def test_a_copy_of_one_long_part_alone_is_seen_in_the_pairs(tmp_path: Path) -> None:
    """Copying only classify_curve (the longest part) shows up as a high pair, not as 0."""
    rng = random.Random(3)
    honest = {f"s{i}": honest_submission(rng) for i in range(12)}
    partial = honest_submission(rng)
    partial["p5-answer"] = honest["s0"]["p5-answer"]
    honest["partial"] = partial
    codes = {s: answer_code(_notebook(c)) for s, c in honest.items()}
    course = Course.from_env(REPO, tmp_path / "instructor")
    _, pairs, _, _ = compare_code(codes, boilerplate_code(course, "sql_overfitting"))
    top = pairs[0]
    assert {top.a, top.b} == {"partial", "s0"}, [(p.a, p.b, p.similarity) for p in pairs[:3]]


def test_quiz_letters_on_different_variants_are_listed() -> None:
    from grader.verdicts.trusted import load_checker

    load_checker(REPO, "quiz")
    import sys

    checker = sys.modules["_grader_checker_quiz"]
    rng = random.Random(5)
    questions = checker.Q.QUESTIONS
    honest = {f"s{i}": {q: rng.choice("abcd") for q in questions} for i in range(20)}
    honest["ann"] = {q: checker.correct_letter("ann", q) for q in questions}
    honest["bob"] = dict(honest["ann"])  # bob pasted ann's letters
    flagged, compared = compare_quiz(honest, checker.variant_summary)
    assert [(p.a, p.b) for p in flagged] == [("ann", "bob")]
    assert compared == 22 * 21 // 2 and "different variants" in flagged[0].detail


def test_quiz_letters_are_read_from_the_answer_cells() -> None:
    nb = nbformat.read(REPO / "notebooks" / "quiz" / "quiz.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("-answer"):
            cell.source = f'# my answer\nanswers["{gid.split("-")[0]}"] = " B "'
    letters = quiz_letters(nb)
    assert len(letters) == 14 and set(letters.values()) == {"b"}


def test_the_command_line(demo, capsys) -> None:
    course, _, planted, _ = demo
    code = main(
        [
            "--course-dir",
            str(course.root),
            "--instructor-root",
            str(course.instructor),
            "similarity",
            "sql_overfitting",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(rf"{planted[0][0]} / {planted[0][1]}: 1\d\d%|{planted[0][0]} / ", out), out
    assert "1 flagged" in out and "index.html" in out
