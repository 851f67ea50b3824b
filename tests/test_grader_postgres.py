"""A gradebook several graders share: nbgrader's gradebook on PostgreSQL.

The mini course (plus one hand-graded answer, as formgrader grades it) is graded twice: into
the default SQLite file with every step one after the other, and into a PostgreSQL database
(a private cluster, ``tests/services.py``) with autograde, manual grading (threads of this
process and a second process, through nbgrader's Gradebook API as formgrader does) and
exports (``python -m grader --db-url ... export`` in a loop) all at once. Both gradebooks must
hold the same rows, the same grades and export the same CSV: nothing lost, nothing doubled.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course, corpus, hostile_context, write_submissions
from nbformat.v4 import new_markdown_cell
from services import postgres  # noqa: F401 (the fixture)

from grader.grading.autograde import autograde
from grader.handout.release import release_all
from grader.sandbox.bubblewrap import check_sandbox
from grader.stores.course import Course
from grader.stores.gradebook import ServerGradebook

pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
    pytest.mark.skipif(bool(check_sandbox()), reason=f"no bubblewrap sandbox: {check_sandbox()}"),
]

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 5
FIRST = ["complete", "partial", "wrong"]  # graded before the concurrent phase
LATER = ["blank", "raises", "deleted_test"]  # graded for the first time during it
STUDENTS = FIRST + LATER
MANUAL = "explain"  # the hand-graded answer cell
GRADE_CELLS = 4  # test_square, test_answer, test_cube, explain
MANUAL_SCORES = {s: [1.0, 0.5, 0.0][i % 3] for i, s in enumerate(STUDENTS)}


def make_course(root: Path, url: str | None) -> Course:
    """The mini course with a hand-graded markdown answer; submissions of STUDENTS."""
    build_course(root)
    master = root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(master, as_version=4)
    meta = {"grade_id": MANUAL, "solution": True, "grade": True, "locked": False, "points": 1}
    cell = new_markdown_cell(
        "Why is 42 the answer?\n\n### BEGIN SOLUTION\nIt is.\n### END SOLUTION",
        metadata={"nbgrader": {**meta, "schema_version": 3}},
    )
    cell.id = MANUAL
    nb.cells.append(cell)
    nbformat.write(nb, master)
    course = Course(root=root, instructor=root / ".instructor", gradebook_url=url)
    release_all(course=course)
    ctx = hostile_context(root, course.instructor)
    cases = [c for c in corpus(ctx) if c.student in STUDENTS]
    released = course.release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    write_submissions(released, course.submitted, cases, ctx)
    return course


def grade_by_hand(url: str, student: str, wait: float = 120.0) -> None:
    """What formgrader's "save" does for one grade: set the manual score in its own session.

    A submission not autograded yet has no grade row: wait for it, as a grader would.
    """
    from nbgrader.api import Gradebook, MissingEntry

    deadline = time.monotonic() + wait
    while True:
        with Gradebook(url) as gb:
            try:
                grade = gb.find_grade(MANUAL, ASSIGNMENT, ASSIGNMENT, student)
            except MissingEntry:
                grade = None
            if grade is not None:
                grade.manual_score = MANUAL_SCORES[student]
                grade.needs_manual_grade = False
                gb.db.commit()
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{student} was never autograded")
        time.sleep(0.1)


HAND_GRADER = """
import sys
sys.path[:0] = {paths!r}
from test_grader_postgres import grade_by_hand
for student in sys.argv[2:]:
    grade_by_hand(sys.argv[1], student)
"""

EXPORTER = """
import pathlib, subprocess, sys
url, root, instructor, out, stop = sys.argv[1:6]
done = 0
while not pathlib.Path(stop).exists():
    subprocess.run([sys.executable, "-m", "grader", "--course-dir", root, "--instructor-root",
                    instructor, "--db-url", url, "export", "--to", out], check=True,
                   capture_output=True)
    done += 1
print(done)
"""


def table_rows(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                name: conn.execute(text(f'select count(*) from "{name}"')).scalar_one()
                for name in sorted(names)
            }
    finally:
        engine.dispose()


def grades(url: str) -> dict[tuple[str, str], tuple]:
    """(student, grade cell) -> (auto_score, manual_score)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select sa.student_id, bc.name, g.auto_score, g.manual_score "
                    "from grade g join submitted_notebook sn on g.notebook_id = sn.id "
                    "join submitted_assignment sa on sn.assignment_id = sa.id "
                    "join base_cell bc on g.cell_id = bc.id"
                )
            ).fetchall()
    finally:
        engine.dispose()
    found: dict[tuple[str, str], tuple] = {}
    for student, cell, auto, manual in rows:
        assert (student, cell) not in found, f"duplicated grade {student} {cell}"
        found[(student, cell)] = (auto, manual)
    return found


def export_rows(path: Path) -> dict[str, tuple]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = ("raw_score", "score", "max_score", "status")
    by_student = {r["student_id"]: tuple(r[k] for k in keys) for r in rows}
    assert len(by_student) == len(rows), "a student exported twice"
    return by_student


def test_shared_gradebook_under_concurrent_graders(postgres, tmp_path) -> None:  # noqa: F811
    from grader.results.export import export_grades

    # -- reference: SQLite, every step in turn -------------------------------------------
    ref = make_course(tmp_path / "sqlite", None)
    assert not ref.shared_gradebook and ref.db_url.startswith("sqlite:///")
    autograde(ref, ASSIGNMENT, students=FIRST, timeout=TIMEOUT, workers=2)
    for student in FIRST:
        grade_by_hand(ref.db_url, student)
    ref_run = autograde(ref, ASSIGNMENT, timeout=TIMEOUT, workers=2)
    for student in LATER:
        grade_by_hand(ref.db_url, student)
    ref_csv = export_grades(ref, tmp_path / "sqlite.csv")

    # -- PostgreSQL: autograde, manual grading and exports at the same time ----------------
    url = postgres.database()
    course = make_course(tmp_path / "pg", url)
    assert course.shared_gradebook and course.db_url == url
    assert isinstance(course.gradebook, ServerGradebook) and course.gradebook.exists()
    assert not (course.instructor / "gradebook.db").exists(), "no SQLite file on the side"
    autograde(course, ASSIGNMENT, students=FIRST, timeout=TIMEOUT, workers=2, preflight=False)

    stop = tmp_path / "stop"
    paths = [str(REPO), str(REPO / "tests")]
    exporter = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, url, str(course.root), str(course.instructor)]
        + [str(tmp_path / "live.csv"), str(stop)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    other_process = subprocess.Popen(
        [sys.executable, "-c", HAND_GRADER.format(paths=paths), url, *LATER, FIRST[0]],
        cwd=REPO,
    )
    errors: list[BaseException] = []

    def by_hand(students: list[str]) -> None:
        try:
            for student in students:
                grade_by_hand(url, student)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    threads = [threading.Thread(target=by_hand, args=([s],)) for s in FIRST[1:]]
    threads.append(threading.Thread(target=by_hand, args=(LATER[::-1],)))
    for thread in threads:
        thread.start()
    run = autograde(course, ASSIGNMENT, timeout=TIMEOUT, workers=2, preflight=False)
    for thread in threads:
        thread.join(timeout=180)
    assert other_process.wait(timeout=180) == 0
    stop.write_text("")
    out, _ = exporter.communicate(timeout=180)
    assert exporter.returncode == 0
    assert int(out.strip()) >= 1, "the exporter never ran during grading"
    assert not errors, errors
    csv_path = export_grades(course, tmp_path / "pg.csv")

    # -- the same gradebook, nothing lost or doubled ---------------------------------------
    # the messages' totals include whatever manual score was saved by then: compare the rest
    assert {r.student: (r.message.partition(" ")[2], r.failed_parts) for r in run.results} == {
        r.student: (r.message.partition(" ")[2], r.failed_parts) for r in ref_run.results
    }
    want = grades(ref.db_url)
    got = grades(url)
    assert len(got) == len(STUDENTS) * GRADE_CELLS
    assert got == want
    assert {s: got[(s, MANUAL)][1] for s in STUDENTS} == MANUAL_SCORES
    assert table_rows(url) == table_rows(ref.db_url)
    assert export_rows(csv_path) == export_rows(ref_csv)
    assert len(export_rows(csv_path)) == len(STUDENTS)


def test_cli_and_config_take_the_url(postgres, tmp_path, monkeypatch) -> None:  # noqa: F811
    """--db-url and $TUNELAB_GRADEBOOK_URL reach the course, nbgrader's config and messages."""
    url = postgres.database()
    monkeypatch.setenv("TUNELAB_GRADEBOOK_URL", url)
    course = Course.from_env(tmp_path, tmp_path / "inst")
    assert course.db_url == url and course.config().CourseDirectory.db_url == url
    derived = Course(course.root, course.instructor, tmp_path / "release")
    assert derived.db_url == url, "a course derived from it keeps the shared gradebook"
    other = Course(course.root, tmp_path / "demo")
    assert other.db_url == f"sqlite:///{tmp_path / 'demo' / 'gradebook.db'}"
    monkeypatch.delenv("TUNELAB_GRADEBOOK_URL")
    assert Course.from_env(tmp_path, tmp_path / "x").db_url.startswith("sqlite:///")

    secret = url.replace("grader@", "grader:hunter2@")
    done = subprocess.run(
        [sys.executable, "-m", "grader", "--course-dir", str(tmp_path), "--instructor-root"]
        + [str(tmp_path / "i2"), "--db-url", secret, "export"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no gradebook at postgresql://grader:***@" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr

    config = subprocess.run(
        [
            sys.executable,
            "-c",
            "from traitlets.config.loader import PyFileConfigLoader as L; "
            "print(L('nbgrader_config.py', path='grader').load_config().CourseDirectory.db_url)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "TUNELAB_GRADEBOOK_URL": url,
            "HOME": str(tmp_path),
            "TUNELAB_INSTRUCTOR_ROOT": str(tmp_path / "i3"),
        },
    )
    assert config.stdout.strip() == url, config.stderr
