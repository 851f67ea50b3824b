"""Autograding a corpus of good, bad and hostile submissions of a tiny fixture course.

Each case asserts the score and the per-student message; hostile ones also assert that
nothing outside the sandbox changed (file hashes of the course, rows of the gradebook).
Parallel grading must equal serial grading, and grading twice must change nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from grader_corpus import (
    ASSIGNMENT,
    MAX_SCORE,
    build_course,
    corpus,
    gradebook_rows,
    hostile_context,
    scores,
    tree_digest,
    write_submissions,
)

from grader.grading import autograde as autograde_module
from grader.grading.autograde import autograde
from grader.handout.release import release_all
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course, CourseError

pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
    # the corpus duplicates cells (ids too) on purpose; nbformat repairs and says so
    pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId"),
    pytest.mark.filterwarnings("ignore::nbformat.warnings.MissingIDFieldWarning"),
]

TIMEOUT = 2  # seconds per cell: the corpus' loops and sleeps hit it on purpose
MEMORY_MB = 1024

needs_sandbox = pytest.mark.skipif(
    bool(check_sandbox()), reason=f"no working bubblewrap sandbox: {check_sandbox()}"
)


def make_course(root: Path, students: list[str] | None = None):
    build_course(root)
    course = Course(root=root, instructor=root / ".instructor")
    release_all(course=course)
    ctx = hostile_context(root, course.instructor)
    cases = [c for c in corpus(ctx) if students is None or c.student in students]
    released = course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    write_submissions(released, course.submitted, cases, ctx)
    return course, cases


class Graded:
    def __init__(self, root: Path) -> None:
        self.course, self.cases = make_course(root)
        self.root = root
        instructor = self.course.instructor
        self.course_before = tree_digest(root, skip=(instructor,))
        self.submitted_before = tree_digest(self.course.submitted)
        self.run = autograde(
            self.course, ASSIGNMENT, timeout=TIMEOUT, memory_mb=MEMORY_MB, workers=2
        )
        self.by_student = {r.student: r for r in self.run.results}

    def outputs(self, student: str, grade_id: str) -> str:
        path = self.course.autograded / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                return "".join(o.get("text", "") for o in cell.outputs)
        raise KeyError(grade_id)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Graded:
    if check_sandbox():
        pytest.skip(f"no working bubblewrap sandbox: {check_sandbox()}")
    return Graded(tmp_path_factory.mktemp("corpus"))


CASES = [c.student for c in corpus(hostile_context(Path("/x"), Path("/y")))]


@needs_sandbox
@pytest.mark.parametrize("student", CASES)
def test_case_score_and_message(graded: Graded, student: str) -> None:
    case = next(c for c in graded.cases if c.student == student)
    result = graded.by_student[student]
    assert result.status == case.status, result.message
    assert result.score == case.score, result.message
    assert result.max_score == MAX_SCORE
    for phrase in case.says:
        assert phrase.lower() in result.message.lower(), result.message
    for grade_id in case.failed:
        assert grade_id in result.failed_parts, result.message


@needs_sandbox
def test_every_submission_gets_a_grade_row(graded: Graded) -> None:
    """Broken files are scored 0 in the gradebook (so the export lists them), not skipped."""
    rows = scores(graded.course.gradebook)
    for case in graded.cases:
        parts = {cell: v for (s, cell), v in rows.items() if s == case.student}
        assert set(parts) == {"test_square", "test_answer", "test_cube"}, case.student
        assert sum(v[0] or 0 for v in parts.values()) == case.score, case.student


@needs_sandbox
def test_hostile_submissions_were_blocked(graded: Graded) -> None:
    reads = graded.outputs("reads_secrets", "sol_answer")
    assert "READ: []" in reads and reads.count("blocked") == 6, reads
    writes = graded.outputs("vandal", "sol_answer")
    assert "CHANGED: []" in writes and writes.count("blocked") == 6, writes
    network = graded.outputs("network", "sol_answer")
    assert "outside blocked" in network and "OUTSIDE" not in network, network
    assert "loopback: pong" in network, "the sandbox's own loopback must keep working"


@needs_sandbox
def test_course_and_submissions_unchanged(graded: Graded) -> None:
    assert tree_digest(graded.root, skip=(graded.course.instructor,)) == graded.course_before
    assert tree_digest(graded.course.submitted) == graded.submitted_before


@needs_sandbox
def test_hostile_regrade_touches_only_its_own_rows(graded: Graded) -> None:
    hostile = tuple(c.student for c in graded.cases if c.hostile)
    course = graded.course
    mine = tuple(course.autograded / s for s in hostile) + (
        course.gradebook,
        course.instructor / "logs",
        course.instructor / "preflight",  # the master's check: redone when the grader changes
        course.runs,
    )
    files_before = tree_digest(graded.root, skip=mine)
    rows_before = gradebook_rows(course.gradebook, exclude=hostile)
    rerun = autograde(
        course, ASSIGNMENT, students=list(hostile), timeout=TIMEOUT, memory_mb=MEMORY_MB
    )
    assert [r.score for r in rerun.results] == [MAX_SCORE] * len(hostile)
    files_after = tree_digest(graded.root, skip=mine)
    changed = sorted(set(files_after.items()) ^ set(files_before.items()))
    assert files_after == files_before, changed
    assert gradebook_rows(course.gradebook, exclude=hostile) == rows_before


SUBSET = ["complete", "blank", "wrong", "raises", "exits", "deleted_test", "corrupt_json"]


@needs_sandbox
def test_serial_equals_parallel_and_regrading_is_idempotent(graded: Graded, tmp_path) -> None:
    course, _ = make_course(tmp_path / "serial", SUBSET)
    serial = autograde(course, ASSIGNMENT, timeout=TIMEOUT, memory_mb=MEMORY_MB, workers=1)
    assert serial.workers == 1
    got = scores(course.gradebook)
    want = {k: v for k, v in scores(graded.course.gradebook).items() if k[0] in SUBSET}
    assert got == want
    messages = {r.student: r.message for r in serial.results}
    assert messages == {s: graded.by_student[s].message for s in SUBSET}

    rows = gradebook_rows(course.gradebook)
    again = autograde(course, ASSIGNMENT, timeout=TIMEOUT, memory_mb=MEMORY_MB, workers=2)
    assert gradebook_rows(course.gradebook) == rows, "re-grading must not add or change rows"
    assert [r.message for r in again.results] == [r.message for r in serial.results]


@needs_sandbox
def test_run_record_lists_every_student(graded: Graded) -> None:
    import json

    record = json.loads(graded.run.record.read_text())
    assert {r["student"] for r in record["results"]} == set(CASES)
    assert all(r["message"] for r in record["results"])
    log = graded.course.instructor / "logs" / "autograde" / ASSIGNMENT / "duplicated_test.log"
    assert "exists multiple times" in log.read_text()


def test_refuses_to_run_unsandboxed_without_consent(tmp_path, monkeypatch) -> None:
    course, _ = make_course(tmp_path / "c", ["complete"])
    monkeypatch.setattr(autograde_module, "check_sandbox", lambda: "bubblewrap is missing")
    with pytest.raises(CourseError, match="--no-sandbox"):
        autograde(course, ASSIGNMENT)
    assert not course.autograded.exists()


def test_no_sandbox_mode_grades_the_same(tmp_path) -> None:
    """--no-sandbox runs nbgrader's own kernel manager; benign work gets the same grades."""
    course, _ = make_course(tmp_path / "c", ["complete", "partial", "wrong"])
    run = autograde(course, ASSIGNMENT, sandbox=False, timeout=10)
    assert not run.sandboxed
    assert {r.student: r.score for r in run.results} == {"complete": 4, "partial": 1, "wrong": 2}


def test_unknown_assignment_is_a_clear_error(tmp_path) -> None:
    course, _ = make_course(tmp_path / "c", [])
    with pytest.raises(CourseError, match="unknown assignment 'nope'"):
        autograde(course, "nope")


def test_missing_submission_folder_contents(tmp_path) -> None:
    """A student folder without any notebook is scored 0 with a message, not skipped."""
    course, _ = make_course(tmp_path / "c", [])
    (course.submitted / "ghost" / ASSIGNMENT).mkdir(parents=True)
    run = autograde(course, ASSIGNMENT, sandbox=False)
    (result,) = run.results
    assert result.score == 0 and "mini.ipynb is missing" in result.message
    shutil.rmtree(course.submitted / "ghost")


def test_one_autograde_per_gradebook(tmp_path) -> None:
    import fcntl

    course, _ = make_course(tmp_path / "c", ["complete"])
    with open(course.instructor / ".autograde.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(CourseError, match="another autograde is running"):
            autograde(course, ASSIGNMENT, sandbox=False)


def test_links_in_a_submission_are_not_graded(tmp_path) -> None:
    course, _ = make_course(tmp_path / "c", [])
    folder = course.submitted / "mal" / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder)
    (folder / "answers.txt").symlink_to(course.source / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (result,) = autograde(course, ASSIGNMENT, sandbox=False).results
    assert result.score == 0 and "symbolic links (answers.txt)" in result.message
    assert not (course.autograded / "mal").exists()
