"""Feedback: one HTML page per student and notebook, made by nbgrader's ``generate_feedback``.

Each page is the student's autograded notebook with the score of every part, the test
cells (hidden tests included, as nbgrader shows them) and their errors. One converter per
student, so one broken submission cannot stop the others, and the progress bar moves.

Submissions are untrusted, and so is everything they printed: pages are rendered by
:class:`grader.results.sanitize.SafeFeedbackExporter`, which cleans the notebook, caps its outputs,
runs no script and puts a Content-Security-Policy first in ``<head>``. A page that still
fails :func:`grader.results.sanitize.page_problems` is deleted (a stale page from an older run too)
and the student is listed as failed, so an unsafe page is never left to be opened.

Tracebacks in a page name files by their absolute paths: the instructor's checkout, the
course folder, the instructor folder, the Python installation. :func:`scrub_paths` replaces
those prefixes with short neutral names (``[course]/``, ``[python]/``...) before a page is
checked and kept, so a student learns nothing about the instructor's machine.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config

from grader.results.sanitize import SafeFeedbackExporter, page_problems
from grader.stores.course import Course
from grader.stores.logs import captured, failure_reason

log = logging.getLogger("grader.nbgrader")


@dataclass
class FeedbackRun:
    assignment: str
    pages: dict[str, list[Path]] = field(default_factory=dict)  # student -> html files
    failed: dict[str, str] = field(default_factory=dict)  # student -> reason


def autograded_students(course: Course, assignment: str) -> list[str]:
    if not course.autograded.is_dir():
        return []
    return sorted(
        p.name
        for p in course.autograded.iterdir()
        if any((p / assignment).glob("*.ipynb")) and not p.name.startswith(".")
    )


def feedback_config(course: Course, limits: dict[str, int] | None = None) -> Config:
    """The course's configuration with the safe exporter; ``limits`` overrides the caps of
    :class:`grader.results.sanitize.SanitizeForFeedback` (e.g. ``{"max_output_chars": 5000}``)."""
    extra = Config()
    extra.GenerateFeedback.exporter_class = SafeFeedbackExporter
    for name, value in (limits or {}).items():
        extra.SanitizeForFeedback[name] = int(value)
    return course.config(extra)


def _path_prefixes(course: Course) -> list[tuple[str, str]]:
    """(absolute folder, shown as) pairs, longest first, so nested folders match first."""
    repo = Path(__file__).resolve().parents[2]
    pairs = {
        str(course.instructor.resolve()): "[instructor]",
        str(Path(course.root).resolve()): "[course]",
        str(repo): "[course]",
        str(Path(sys.prefix).resolve()): "[python]",
        str(Path(sys.base_prefix).resolve()): "[python]",
        sys.prefix: "[python]",
        str(Path.home()): "[home]",
    }
    for name in ("TUNELAB_INSTRUCTOR_ROOT", "TUNELAB_COURSE_DIR"):
        if os.environ.get(name):
            pairs.setdefault(str(Path(os.environ[name]).resolve()), "[course]")
    return sorted(((k, v) for k, v in pairs.items() if len(k) > 1), key=lambda kv: -len(kv[0]))


def scrub_paths(text: str, course: Course) -> str:
    """``text`` with the instructor's folders replaced by neutral names (module docstring)."""
    for prefix, shown in _path_prefixes(course):
        text = text.replace(prefix + "/", shown + "/")
    return text


def _scrub_pages(pages: list[Path], course: Course) -> None:
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        clean = scrub_paths(text, course)
        if clean != text:
            page.write_text(clean, encoding="utf-8")


def _unsafe_pages(pages: list[Path]) -> str:
    """Delete every page that must not be opened; say why, or "" when all are safe."""
    reasons = []
    for page in pages:
        problems = page_problems(page.read_text(encoding="utf-8", errors="replace"))
        if problems:
            page.unlink()
            reasons.append(f"{page.name} was unsafe and was deleted: " + "; ".join(problems[:3]))
    return "; ".join(reasons)


def generate_feedback(
    course: Course,
    assignment: str,
    *,
    students: list[str] | None = None,
    progress: bool = False,
    limits: dict[str, int] | None = None,
) -> FeedbackRun:
    """Write ``feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html`` for every autograded student."""
    from nbgrader.converters import GenerateFeedback, NbGraderException

    from grader.grading.autograde import _progress

    course.notebooks(assignment)  # a clear error for an unknown assignment
    names = autograded_students(course, assignment) if students is None else students
    cfg = feedback_config(course, limits)
    run = FeedbackRun(assignment)
    bar = _progress(len(names), f"feedback {assignment}", progress)
    try:
        for student in names:
            coursedir = course.coursedir(cfg, assignment_id=assignment, student_id=student)
            converter = GenerateFeedback(coursedir=coursedir, config=cfg, log=log)
            converter.force = True
            with captured(log, logging.ERROR) as errors:
                try:
                    converter.start()
                except NbGraderException as err:
                    run.failed[student] = failure_reason(errors) or str(err)
            pages = sorted((course.feedback / student / assignment).glob("*.html"))
            _scrub_pages(pages, course)
            unsafe = _unsafe_pages(pages)
            if unsafe:
                run.failed[student] = unsafe
            elif pages and student not in run.failed:
                run.pages[student] = pages
            elif student not in run.failed:
                run.failed[student] = "no feedback page was written"
            bar.update(1)
    finally:
        bar.close()
    return run
