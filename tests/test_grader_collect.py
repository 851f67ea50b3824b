"""Collect: folder and LMS-zip sources, and every file that must be reported, not guessed."""

from __future__ import annotations

import shutil
import sqlite3
import zipfile
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course, master_notebook

from grader.grading.collect import CourseFileNameCollector, collect, lms_pattern, parse_lms_name
from grader.stores.course import Course, CourseError

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@pytest.fixture
def course(tmp_path: Path) -> Course:
    root = build_course(tmp_path / "course")
    # a second assignment whose id ends like the first, to make names ambiguous
    other = root / "solutions" / "x_mini"
    other.mkdir()
    nbformat.write(master_notebook(), other / "x_mini.ipynb")
    return Course(root=root, instructor=root / ".instructor")


def notebook_bytes(tag: str = "") -> bytes:
    nb = master_notebook()
    nb.cells[0].source += tag
    return nbformat.writes(nb).encode()


def students_in_gradebook(course: Course) -> set[str]:
    con = sqlite3.connect(course.gradebook)
    try:
        return {row[0] for row in con.execute("select id from student")}
    finally:
        con.close()


def test_folder_source(course: Course, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    good = inbox / "ann" / ASSIGNMENT
    good.mkdir(parents=True)
    (good / "mini.ipynb").write_bytes(notebook_bytes())
    (good / "helper.py").write_text("X = 1\n")
    (good / "timestamp.txt").write_text("2025-05-01 10:00:00")
    (inbox / "bob" / ASSIGNMENT).mkdir(parents=True)
    (inbox / "bob" / ASSIGNMENT / "mini (1).ipynb").write_bytes(notebook_bytes())
    (inbox / "bob" / "homework").mkdir()
    (inbox / "bad name!" / ASSIGNMENT).mkdir(parents=True)
    (inbox / "ann" / ".ipynb_checkpoints").mkdir()
    (inbox / ".DS_Store").write_text("junk")

    report = collect(course, inbox)

    dest = course.submitted / "ann" / ASSIGNMENT
    assert (dest / "mini.ipynb").read_bytes() == notebook_bytes()
    assert (dest / "helper.py").exists() and (dest / "timestamp.txt").exists()
    assert report.imported == ["ann/mini: new", "bob/mini: new"]
    problems = "\n".join(report.problems)
    assert "mini (1).ipynb: unexpected notebook name" in problems
    assert "bob/mini: no mini.ipynb" in problems.replace(str(inbox) + "/", "")
    assert "unknown assignment 'homework'" in problems
    assert "'bad name!' is not a valid student id" in problems
    assert not (course.submitted / "bob" / ASSIGNMENT / "mini (1).ipynb").exists()
    assert students_in_gradebook(course) == {"ann", "bob"}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_lms_zip_source(course: Course, tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "download.zip",
        {
            "export/ann_mini.ipynb": notebook_bytes("ann"),
            "export/j_doe_mini.ipynb": notebook_bytes("jdoe"),
            "export/cy_mini_2025-05-01T09-00-00.ipynb": notebook_bytes("old"),
            "export/cy_mini_2025-05-02T09-00-00.ipynb": notebook_bytes("new"),
            "export/dee_mini.ipynb": notebook_bytes("one"),
            "export/dee_mini_2025-05-02T09-00-00.ipynb": notebook_bytes("two"),
            "export/mini.ipynb": notebook_bytes(),
            "export/eve_x_mini.ipynb": notebook_bytes(),
            "export/notes.txt": b"hello",
            "__MACOSX/export/._ann_mini.ipynb": b"junk",
        },
    )
    report = collect(course, archive)

    assert sorted(report.imported) == ["ann/mini: new", "cy/mini: new", "j_doe/mini: new"]
    new = course.submitted / "cy" / ASSIGNMENT
    assert (new / "mini.ipynb").read_bytes() == notebook_bytes("new")
    assert (new / "timestamp.txt").read_text() == "2025-05-02 09:00:00"
    problems = "\n".join(report.problems)
    assert "cy/mini: 2 files" in problems and "collected the newest" in problems
    assert "dee/mini: 2 files" in problems and "none collected" in problems
    assert "export/mini.ipynb: name does not follow STUDENT_ASSIGNMENT.ipynb" in problems
    assert "eve_x_mini.ipynb: ambiguous name" in problems
    assert "eve/x_mini" in problems and "eve_x/mini" in problems
    assert "notes.txt: not a notebook" in problems
    assert "__MACOSX" not in problems
    assert not (course.submitted / "dee").exists()

    again = collect(course, archive)
    assert again.imported == [] and sorted(again.unchanged) == ["ann/mini", "cy/mini", "j_doe/mini"]


def test_recollect_replaces_a_resubmission(course: Course, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "ann" / ASSIGNMENT).mkdir(parents=True)
    (inbox / "ann" / ASSIGNMENT / "mini.ipynb").write_bytes(notebook_bytes("v1"))
    collect(course, inbox)
    (inbox / "ann" / ASSIGNMENT / "mini.ipynb").write_bytes(notebook_bytes("v2"))
    report = collect(course, inbox)
    assert report.imported == ["ann/mini: updated"]
    assert (course.submitted / "ann" / ASSIGNMENT / "mini.ipynb").read_bytes() == notebook_bytes(
        "v2"
    )


def test_flat_folder_of_lms_files(course: Course, tmp_path: Path) -> None:
    inbox = tmp_path / "flat"
    inbox.mkdir()
    (inbox / "ann_mini.ipynb").write_bytes(notebook_bytes())
    assert collect(course, inbox).imported == ["ann/mini: new"]


def test_bad_sources(course: Course, tmp_path: Path) -> None:
    with pytest.raises(CourseError, match="does not exist"):
        collect(course, tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CourseError, match="neither a folder nor a .zip"):
        collect(course, tmp_path / "file.txt")


def test_name_rule() -> None:
    assignments = ["quiz", "sql_overfitting"]
    assert parse_lms_name("jdoe_sql_overfitting.ipynb", assignments) == [
        {"student_id": "jdoe", "file_id": "sql_overfitting"}
    ]
    assert parse_lms_name("Jane.Doe-2_quiz.ipynb", assignments)[0]["student_id"] == "Jane.Doe-2"
    for bad in ("quiz.ipynb", "jdoe-quiz.ipynb", "jdoe_quiz.py", "_quiz.ipynb", "jdoe_Quiz.ipynb"):
        assert parse_lms_name(bad, assignments) == [], bad
    collector = CourseFileNameCollector(assignments=assignments)
    assert collector.named_regexp == lms_pattern(assignments)
    info = collector.collect("/downloads/jdoe_quiz_2025-05-01T14-03-00.ipynb")
    assert info == {"student_id": "jdoe", "file_id": "quiz", "timestamp": "2025-05-01 14:03:00"}
    assert collector.collect("notes.txt") is None


def test_collect_then_students_are_listed_for_autograde(course: Course, tmp_path: Path) -> None:
    from grader.grading.autograde import Autograder

    inbox = tmp_path / "inbox"
    for student in ("zed", "amy"):
        (inbox / student / ASSIGNMENT).mkdir(parents=True)
        (inbox / student / ASSIGNMENT / "mini.ipynb").write_bytes(notebook_bytes())
    collect(course, inbox)
    assert Autograder(course, ASSIGNMENT).students() == ["amy", "zed"]
    shutil.rmtree(inbox)


def test_symbolic_links_are_never_followed(course: Course, tmp_path: Path) -> None:
    """A link in a submission would make the trusted grader read what it points to."""
    secret = course.root / "solutions" / ASSIGNMENT / "mini.ipynb"
    inbox = tmp_path / "inbox"
    folder = inbox / "mal" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / "mini.ipynb").symlink_to(secret)
    (folder / "data").symlink_to(course.root / "solutions")
    (inbox / "lnk_mini.ipynb").symlink_to(secret)
    report = collect(course, inbox)
    problems = "\n".join(report.problems)
    assert problems.count("a symbolic link") == 3, problems
    dest = course.submitted / "mal" / ASSIGNMENT
    assert not (dest / "mini.ipynb").exists() and not (dest / "data").exists()
    assert not (course.submitted / "lnk").exists()


def test_zip_bomb_is_refused(course: Course, tmp_path: Path, monkeypatch) -> None:
    import grader.grading.collect as collect_module

    monkeypatch.setattr(collect_module, "MAX_ARCHIVE_MB", 1)
    archive = make_zip(tmp_path / "big.zip", {"ann_mini.ipynb": b"0" * (3 * 2**20)})
    with pytest.raises(CourseError, match="unpacks to 3 MB"):
        collect(course, archive)
