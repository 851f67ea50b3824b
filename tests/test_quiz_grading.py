"""The quiz's variants through the real pipeline: sandboxed autograde, feedback text, export.

Why: the variant a student sees must be the one they are graded on, in JupyterLab, in
Validate and at grading, whatever id they type into the notebook: the grader uses the id the
submission was collected under and tells the kernel so. Letters copied from a classmate then
score like guesses, and the instructor's export shows each student's variant.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import nbformat
import pytest
from test_assignments import Course, master_path, with_solutions

from grader.handout.editions import build_edition, cell_key, load_catalogue
from grader.results.export import export_grades
from grader.verdicts.trusted import load_checker
from tunelab.checks import quiz as Q

ROOT = Path(__file__).resolve().parents[1]
load_checker(ROOT, "quiz")
CHECKER = sys.modules["_grader_checker_quiz"]


def letters_of(student: str) -> dict[str, str]:
    return {
        f"{q}-answer": f'answers["{q}"] = "{CHECKER.correct_letter(student, q)}"'
        for q in Q.QUESTIONS
    }


def typed_id(nb: nbformat.NotebookNode, student: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.get("id") == "quiz-student-id":
            cell.source = f'STUDENT_ID = "{student}"'
            return nb
    raise AssertionError("the quiz has no STUDENT_ID cell")


def outputs(nb: nbformat.NotebookNode, key: str) -> str:
    cell = next(c for c in nb.cells if cell_key(c) == key)
    return "".join(
        o.get("text", "") + o.get("evalue", "") + str(o.get("data", {}).get("text/markdown", ""))
        for o in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = Course.create(tmp_path_factory.mktemp("quiz-variants"), assignments=("quiz",))
    course.generate("quiz")
    master = nbformat.read(master_path("quiz"), as_version=4)
    russian, _ = build_edition(master, load_catalogue("quiz"))
    course.submit("quiz", "alice", master)  # the master answers through her own variant
    course.submit("quiz", "dmitri", russian)
    course.submit("quiz", "bob", with_solutions(master, letters_of("alice")))  # alice's letters
    # carol types alice's id into the notebook and answers alice's variant: graded as carol
    course.submit("quiz", "carol", typed_id(with_solutions(master, letters_of("alice")), "alice"))
    run = course.autograde("quiz")
    return course, run


def test_each_student_earns_their_own_variants_score(graded) -> None:
    course, run = graded
    scores = {r.student: r.score for r in run.results}
    assert scores["alice"] == scores["dmitri"] == 14, run.results
    for copier in ("bob", "carol"):
        expected = sum(
            CHECKER.correct_letter(copier, q) == CHECKER.correct_letter("alice", q)
            for q in Q.QUESTIONS
        )
        assert scores[copier] == expected < 8, (copier, scores[copier], expected)


def test_the_graded_notebook_shows_the_collected_ids_variant(graded) -> None:
    course, _ = graded
    carol = course.autograded_notebook("quiz", "carol")
    greeting = outputs(carol, "quiz-variant")
    assert "carol" in greeting and Q.variant_code("carol") in greeting, greeting
    shown = outputs(carol, "q2-options")
    for letter, text in Q.displayed("carol", "q2", "en")[1]:
        assert f"**({letter})** {text}" in shown
    dmitri = course.autograded_notebook("quiz", "dmitri")
    assert "Вариант теста для dmitri" in outputs(dmitri, "quiz-variant")
    assert "верно" in outputs(dmitri, "q10-check")


def test_the_export_shows_each_students_variant(graded) -> None:
    course, _ = graded
    path = export_grades(course.graders)
    rows = list(csv.DictReader(path.open()))
    assert {r["student_id"]: r["variant"] for r in rows} == {
        s: Q.variant_code(s) for s in ("alice", "bob", "carol", "dmitri")
    }
    details = list(csv.DictReader((path.parent / "variants_quiz.csv").open()))
    alice = next(d for d in details if d["student_id"] == "alice")
    assert alice["q1_key"] == CHECKER.correct_letter("alice", "q1")
    assert alice["q1_order"] == "".join("abcd"[i] for i in Q.permutation("alice", "q1"))
    assert alice["q11_numbers"].startswith("tokens=")
