"""Release: student copies are exactly nbgrader's generate_assignment output, never drifting."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from grader_corpus import ASSIGNMENT, build_course

from grader.handout.release import ReleaseError, release_all
from grader.stores.course import REPO, Course
from grader.stores.gradebook import alembic_head, ensure_gradebook

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def files(root: Path) -> set[Path]:
    """The files under ``root``, relative to it; JupyterLab's ``.ipynb_checkpoints`` folders
    are not part of a release: a browser test on another pytest worker may have a lesson open
    (and its autosave folder present) right now."""
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and ".ipynb_checkpoints" not in p.relative_to(root).parts
    }


def same_tree(left: Path, right: Path) -> list[str]:
    """Relative paths that differ between two folders (missing on either side included)."""
    diffs = []
    names = files(left) | files(right)
    for name in sorted(names):
        a, b = left / name, right / name
        if not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)):
            diffs.append(str(name))
    return diffs


def test_release_equals_plain_nbgrader(tmp_path: Path) -> None:
    """release_all(dest) writes byte-for-byte what `nbgrader generate_assignment` writes."""
    ours = tmp_path / "ours"
    release_all(ours, assignments=["quiz"])
    theirs = tmp_path / "theirs"
    env = {
        **os.environ,
        "TUNELAB_INSTRUCTOR_ROOT": str(tmp_path / "instructor"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    nbgrader = Path(sys.executable).parent / "nbgrader"
    subprocess.run(
        [str(nbgrader), "generate_assignment", "quiz", "--force", "--log-level=ERROR",
         f"--CourseDirectory.release_directory={theirs}"],
        cwd=REPO / "grader",  # nbgrader reads nbgrader_config.py from the working directory
        env=env,
        check=True,
    )  # fmt: skip
    assert (theirs / "quiz" / "quiz.ipynb").exists()
    assert same_tree(ours / "quiz", theirs / "quiz") == []


def test_committed_student_copies_match_the_masters(tmp_path: Path) -> None:
    """notebooks/ is generated from solutions/: regenerate and compare (run `release` if not)."""
    course = Course.from_env(REPO, tmp_path / "instructor")
    fresh = tmp_path / "fresh"
    released = release_all(fresh, course=course)
    assert {p.name for p in released} == set(course.assignments())
    # The committed tree, not the work tree: a browser test on another pytest worker may be
    # running a lesson in notebooks/ right now, with the files it writes beside it.
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "HEAD", "notebooks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    committed = {Path(line).relative_to("notebooks").as_posix() for line in listed if line}
    released_files = {name.as_posix() for name in files(fresh)}
    assert committed, "no notebooks/ in HEAD"
    diffs = [
        name
        for name in sorted(committed | released_files)
        if not _committed_equals(f"notebooks/{name}", fresh / name)
    ]
    assert diffs == [], "notebooks/ is stale; run `python -m grader release` and commit"


def _committed_equals(rel: str, fresh: Path) -> bool:
    """Whether the *committed* copy equals the fresh release: a browser test on another pytest
    worker may have a lesson open and saved in the work tree right now (it restores it)."""
    shown = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=REPO, capture_output=True)
    return shown.returncode == 0 and fresh.is_file() and shown.stdout == fresh.read_bytes()


def test_release_into_course_and_gradebook(tmp_path: Path) -> None:
    course = Course(root=build_course(tmp_path / "c"), instructor=tmp_path / "c" / ".instructor")
    (path,) = release_all(course=course)
    student = nbformat.read(path / f"{ASSIGNMENT}.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert 'raise NotImplementedError("replace this line' in text
    assert "BEGIN HIDDEN TESTS" not in text
    assert "answer == 42" not in text  # the hidden test stays in the gradebook only
    assert course.gradebook.exists()


def test_release_reports_every_broken_master_and_continues(tmp_path: Path) -> None:
    root = build_course(tmp_path / "c")
    broken = root / "solutions" / "broken"
    broken.mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n")  # END marker missing
    cell.metadata["nbgrader"] = {"grade_id": "x", "solution": True, "grade": False,
                                 "locked": False, "schema_version": 3}  # fmt: skip
    nb.cells.append(cell)
    nbformat.write(nb, broken / "broken.ipynb")
    course = Course(root=root, instructor=root / ".instructor")
    with pytest.raises(ReleaseError) as info:
        release_all(course=course)
    assert list(info.value.failures) == ["broken"]
    assert "broken" in str(info.value) and "no end solution statement" in str(info.value)
    assert (root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


def test_gradebook_stamp_is_nbgraders_alembic_head(tmp_path: Path) -> None:
    import nbgrader
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    assert [alembic_head()] == ScriptDirectory.from_config(cfg).get_heads()
    db = tmp_path / "gb" / "gradebook.db"
    ensure_gradebook(db)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:  # nbgrader accepts it and builds its tables
        assert gb.students == []
