"""``python -m grader``: every command's help, and collect -> autograde -> feedback -> export ->
report on a small fixture class, checking the summaries and the files they point to."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course, corpus, hostile_context, write_submissions

from grader.cli import build_parser, main
from grader.handout.release import release_all
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
COMMANDS = [
    "release",
    "collect",
    "autograde",
    "feedback",
    "export",
    "report",
    "similarity",
    "demo",
]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"] if command else ["--help"])
    assert info.value.code == 0
    assert "usage: python -m grader" in capsys.readouterr().out


def test_parser_knows_every_command() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One class of four, run through the CLI commands in order; outputs kept per step."""
    root = build_course(tmp_path_factory.mktemp("cli") / "course")
    course = Course(root=root, instructor=root / ".instructor")
    release_all(course=course)
    inbox = root.parent / "inbox"
    ctx = hostile_context(root, course.instructor)
    cases = [c for c in corpus(ctx) if c.student in ("complete", "wrong", "blank", "empty_file")]
    write_submissions(course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", inbox, cases, ctx)
    base = ["--course-dir", str(root), "--instructor-root", str(course.instructor), "-q"]
    sandbox = [] if not check_sandbox() else ["--no-sandbox"]
    steps = {
        "collect": ["collect", str(inbox)],
        "autograde": ["autograde", ASSIGNMENT, "--timeout", "10", "--workers", "2", *sandbox],
        "feedback": ["feedback", ASSIGNMENT],
        "export": ["export"],
        "report": ["report", ASSIGNMENT],
    }
    return course, base, steps


def run_cli(capsys, args: list[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().out


def test_pipeline(pipeline, capsys) -> None:
    course, base, steps = pipeline
    code, out = run_cli(capsys, base + steps["collect"])
    assert code == 0, out  # the empty notebook is collected: autograde says what is wrong
    assert "new or updated submissions: 4" in out
    assert "students registered in the gradebook: 4" in out

    code, out = run_cli(capsys, base + steps["autograde"])
    assert code == 0, out
    assert "Autograded mini: 4 submission(s)" in out and "graded: 4   not graded: 0" in out
    assert "complete    4/4" in out
    assert "empty_file  0/4 - mini.ipynb is empty (0 bytes) - scored 0" in out
    assert f"gradebook             {course.gradebook}" in out

    code, out = run_cli(capsys, base + steps["feedback"])
    assert code == 0 and "Feedback for mini: 3 student(s), 0 failed" in out
    page = course.feedback / "wrong" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    text = page.read_text()
    assert "answer is not the expected value" in text and "2.0" in text

    code, out = run_cli(capsys, base + steps["export"])
    rows = list(csv.DictReader((course.exports / "grades.csv").open()))
    assert code == 0 and "Exported 4 grade row(s)" in out
    assert {r["student_id"]: float(r["score"]) for r in rows} == {
        "blank": 0.0,
        "complete": 4.0,
        "empty_file": 0.0,
        "wrong": 2.0,
    }
    assert {r["status"] for r in rows} == {"graded"}

    code, out = run_cli(capsys, base + steps["report"])
    assert code == 0 and "Report for mini: 4 submission(s), mean 1.50/4" in out
    folder = course.reports / ASSIGNMENT
    assert (folder / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (folder / "report.md").read_text()
    assert "| test_answer | 2 | 25% | 0.50 | AssertionError (2) |" in markdown
    attention = markdown.split("## Students who need attention")[1]
    assert "| empty_file | 0/4 | below 50% of the points; mini.ipynb is empty" in attention
    assert "| complete |" not in attention
    assert "<table>" in (folder / "report.html").read_text()
    record = json.loads((course.runs / f"{ASSIGNMENT}.json").read_text())
    assert [r["student"] for r in record["results"]] == ["blank", "complete", "empty_file", "wrong"]


def test_errors_are_reported_not_raised(pipeline, capsys) -> None:
    course, base, _ = pipeline
    code = main([*base, "autograde", "nope"])
    assert code == 2
    assert "unknown assignment 'nope'" in capsys.readouterr().err


def test_no_sandbox_warns_loudly(pipeline, capsys) -> None:
    course, base, _ = pipeline
    code = main([*base, "autograde", ASSIGNMENT, "--no-sandbox", "--student", "complete"])
    captured = capsys.readouterr()
    assert code == 0
    assert "WARNING: grading WITHOUT a sandbox" in captured.err
    assert "NOT sandboxed" in captured.out


def test_release_command_to_a_folder(pipeline, capsys, tmp_path: Path) -> None:
    course, base, _ = pipeline
    code, out = run_cli(capsys, [*base, "release", "--dest", str(tmp_path)])
    assert code == 0 and "Released 1 assignment(s)" in out
    nb = nbformat.read(tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert any("NotImplementedError" in c.source for c in nb.cells)


def test_feedback_failure_names_its_cause(pipeline, capsys) -> None:
    """Not nbgrader's closing "Please see the above traceback": the exception it logged."""
    course, base, steps = pipeline
    assert main([*base, *steps["autograde"], "--student", "complete"]) == 0
    notebook = course.autograded / "complete" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    saved = notebook.read_bytes()
    notebook.chmod(0o644)
    notebook.write_text('{"cells": [')
    capsys.readouterr()
    try:
        code, out = run_cli(capsys, [*base, "feedback", ASSIGNMENT])
    finally:
        notebook.write_bytes(saved)
    assert code == 1
    assert "complete: nbformat.reader.NotJSONError: Notebook does not appear to be JSON" in out
