"""The demo: synthetic submissions of each kind, and the whole pipeline on a small class."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course

from grader.demo import KINDS, _mutate, demo_course, make_submission, run_demo
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import REPO, Course

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
SANDBOX = not check_sandbox()


def quiz_notebooks():
    master = nbformat.read(REPO / "solutions" / "quiz" / "quiz.ipynb", as_version=4)
    released = nbformat.read(REPO / "notebooks" / "quiz" / "quiz.ipynb", as_version=4)
    return master, released


def answers(data: bytes) -> dict[str, str]:
    nb = nbformat.reads(data.decode(), as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }


def test_submission_kinds_on_the_real_quiz() -> None:
    master, released = quiz_notebooks()
    rng = random.Random(1)
    secret = Path("/nowhere/secret")
    made = {kind: make_submission(kind, released, master, rng, secret) for kind in set(KINDS)}
    complete = answers(made["complete"])
    assert not any("NotImplementedError" in s or "### BEGIN" in s for s in complete.values())
    assert complete["q1-answer"].strip().endswith('answers["q1"] = quiz.letter("q1", 1)')
    wrong = answers(made["wrong"])
    # every answer with a number in it is changed (q11's master answer has none)
    assert all(wrong[k] != complete[k] for k in complete if k != "q11-answer")
    partial = answers(made["partial"])
    assert 0 < sum(partial[k] == complete[k] for k in complete) < len(complete)
    assert answers(made["blank"]) == answers(nbformat.writes(released).encode())
    assert "os._exit(1)" in "".join(answers(made["crashes"]).values())
    assert "while True" in "".join(answers(made["loops"]).values())
    assert str(secret) in "".join(answers(made["snoops"]).values())
    with pytest.raises(Exception):  # noqa: B017 (any JSON error)
        json.loads(made["corrupt"])
    tampered = nbformat.reads(made["tampered"].decode(), as_version=4)
    tests = [c for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert tests and all("pass" in c.source for c in tests)


def test_mutation_changes_numbers_and_letters() -> None:
    rng = random.Random(0)
    assert _mutate('epochs = 5\nlr = 0.5\nanswers["q1"] = "b"', rng) != (
        'epochs = 5\nlr = 0.5\nanswers["q1"] = "b"'
    )
    assert "raise ValueError" in _mutate("def broken(:\n", rng)


@pytest.fixture(scope="module")
def fixture_demo(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("demo") / "course")
    shutil.copytree(root / "solutions" / ASSIGNMENT, root / "solutions" / "mini_two")
    (root / "solutions" / "mini_two" / "mini.ipynb").rename(
        root / "solutions" / "mini_two" / "mini_two.ipynb"
    )
    course = Course(root=root, instructor=root / ".instructor")
    return run_demo(
        course, students=6, timeout=3, sandbox=SANDBOX, progress=False, say=lambda _: None
    )


def test_demo_pipeline_on_a_fixture_course(fixture_demo) -> None:
    demo: Course = fixture_demo["course"]
    assert demo.instructor.name == "demo" and demo.release == demo.instructor / "release"
    folder, lms = fixture_demo["collect"]
    assert len(folder.imported) == 6 and len(lms.imported) == 6
    assert any("(copy).ipynb: unexpected notebook name" in p for p in folder.problems)
    problems = "\n".join(lms.problems)
    assert "ada/mini_two: 2 files" in problems and "collected the newest" in problems
    assert "mini_two_final_version.ipynb: name does not follow" in problems
    kinds = fixture_demo["plan"].kinds
    for assignment, run in fixture_demo["autograde"].items():
        assert run.failed == [], [r.message for r in run.failed]
        for result in run.results:
            kind = kinds[(result.student, assignment)]
            if kind in ("complete", "snoops"):
                assert result.score == result.max_score == 4, (kind, result.message)
            if kind in ("blank", "corrupt"):
                assert result.score == 0, (kind, result.message)
            if kind in ("wrong", "tampered", "partial", "loops", "crashes"):
                assert result.score < result.max_score, (kind, result.message)
    rows = list(csv.DictReader(Path(fixture_demo["export"]).read_text().splitlines()))
    assert len(rows) == 12
    for report in fixture_demo["reports"].values():
        assert report.png.exists() and report.markdown.exists() and report.html.exists()


def test_demo_keeps_the_real_gradebook_alone(fixture_demo) -> None:
    demo: Course = fixture_demo["course"]
    real = Course(root=demo.root, instructor=demo.instructor.parent)
    assert demo_course(real) == demo
    assert not real.gradebook.exists(), "the demo must use its own gradebook"
    assert not (demo.root / "notebooks" / "mini_two").exists(), "nor release into notebooks/"


@pytest.mark.slow
def test_demo_on_the_real_quiz(tmp_path: Path) -> None:
    course = Course.from_env(REPO, tmp_path / "instructor")
    out = run_demo(
        course,
        students=3,
        timeout=20,
        sandbox=SANDBOX,
        assignments=["quiz"],
        progress=False,
        say=lambda _: None,
    )
    run = out["autograde"]["quiz"]
    assert len(run.results) == 3 and run.failed == []
    kinds = out["plan"].kinds
    for result in run.results:
        if kinds[(result.student, "quiz")] == "complete":
            assert result.score == result.max_score > 0, result.message
    assert out["reports"]["quiz"].png.exists()


@pytest.mark.slow
def test_masters_earn_every_automatic_point(tmp_path: Path) -> None:
    """The masters' own answers, submitted like a student's, pass every test in the grader's
    (sandboxed) kernel: the sandbox leaves the course's code, data and emulator working."""
    from grader.grading.autograde import autograde
    from grader.handout.release import register_assignment

    course = Course.from_env(REPO, tmp_path / "instructor")
    graded = [a for a in ("sql_overfitting", "quiz") if a in course.assignments()]
    for assignment in graded:
        register_assignment(course, assignment)
        master = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", 4)
        released = nbformat.read(REPO / "notebooks" / assignment / f"{assignment}.ipynb", 4)
        data = make_submission("complete", released, master, random.Random(0), Path("/x"))
        folder = course.submitted / "master" / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_bytes(data)
        automatic = sum(
            c.metadata["nbgrader"]["points"]
            for c in master.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
        )
        (result,) = autograde(course, assignment, sandbox=SANDBOX, timeout=60).results
        assert result.score == automatic, result.message
        assert result.failed_parts == {}, result.message
