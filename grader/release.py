"""Release: regenerate the student copies in ``notebooks/`` from the masters in ``solutions/``.

This is exactly ``nbgrader generate_assignment ASSIGNMENT --force`` with the course's
configuration, run for every assignment, so the student copies can never drift from the
masters (the scikit-learn MOOC's "exercises generated from solutions" rule). Releasing
also records each master (with its hidden tests) in the gradebook: that copy is what
autograding restores edited or deleted test cells from.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from grader.course import Course, CourseError
from grader.gradebook import ensure_gradebook
from grader.logs import captured, failure_reason

log = logging.getLogger("grader.release")


class ReleaseError(CourseError):
    """Some assignments could not be released; ``failures`` maps each to its reason."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = "\n".join(f"  {name}: {why}" for name, why in failures.items())
        super().__init__(f"{len(failures)} assignment(s) could not be released:\n{lines}")


def generate_assignment(
    course: Course, assignment: str, *, dest: Path | None = None, db_url: str | None = None
) -> Path:
    """Run nbgrader's GenerateAssignment converter for one assignment; return its folder."""
    from nbgrader.converters import GenerateAssignment, NbGraderException

    course.notebooks(assignment)  # raises a clear CourseError for unknown assignments
    target = course if dest is None else Course(course.root, course.instructor, Path(dest))
    cfg = target.config()
    if db_url is not None:
        cfg.CourseDirectory.db_url = db_url
        if db_url.startswith("sqlite:///"):
            ensure_gradebook(Path(db_url.removeprefix("sqlite:///")))
    else:
        target.ensure_instructor()
    coursedir = target.coursedir(cfg, assignment_id=assignment)
    converter = GenerateAssignment(coursedir=coursedir, config=cfg, log=log)
    converter.force = True
    converter.create_assignment = True
    with captured(log, logging.ERROR) as errors:
        try:
            converter.start()
        except NbGraderException as err:
            detail = failure_reason(errors) or str(err)
            raise CourseError(f"nbgrader generate_assignment {assignment}: {detail}") from err
    return target.release / assignment


def release_all(
    dest: str | Path | None = None,
    *,
    course: Course | None = None,
    assignments: list[str] | None = None,
) -> list[Path]:
    """Regenerate every assignment's student copy.

    ``dest=None`` writes ``notebooks/`` and the instructor gradebook, as the instructor's
    release does. With a ``dest`` folder the copies go there and the gradebook writes go to
    a throw-away database, so tests can compare a fresh release with the committed one
    without touching anything.
    """
    course = course or Course.from_env()
    names = assignments or course.assignments()
    released: list[Path] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="grader-release-db-") as tmp:
        kwargs = {}
        if dest is not None:
            kwargs = {"dest": Path(dest).resolve(), "db_url": f"sqlite:///{Path(tmp) / 'gb.db'}"}
        for name in names:
            try:
                released.append(generate_assignment(course, name, **kwargs))
            except CourseError as err:
                failures[name] = str(err)
    if failures:
        raise ReleaseError(failures)
    return released


def register_assignment(course: Course, assignment: str) -> None:
    """Record an assignment's master in the gradebook without touching ``notebooks/``.

    Autograding needs the master (and its hidden tests) in the gradebook; an instructor who
    grades on a fresh machine has not necessarily run ``release`` there.
    """
    with tempfile.TemporaryDirectory(prefix="grader-register-") as tmp:
        generate_assignment(course, assignment, dest=Path(tmp))


def assignment_in_gradebook(course: Course, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    if not course.gradebook.exists():
        return False
    with Gradebook(course.db_url) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return False
    return True
