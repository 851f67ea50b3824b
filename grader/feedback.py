"""Feedback: one HTML page per student and notebook, made by nbgrader's ``generate_feedback``.

Each page is the student's autograded notebook with the score of every part, the test
cells (hidden tests included, as nbgrader shows them) and their errors. One converter per
student, so one broken submission cannot stop the others, and the progress bar moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import Course
from grader.logs import captured, failure_reason

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


def generate_feedback(
    course: Course, assignment: str, *, students: list[str] | None = None, progress: bool = False
) -> FeedbackRun:
    """Write ``feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html`` for every autograded student."""
    from nbgrader.converters import GenerateFeedback, NbGraderException

    from grader.autograde import _progress

    course.notebooks(assignment)  # a clear error for an unknown assignment
    names = autograded_students(course, assignment) if students is None else students
    cfg = course.config()
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
            if pages and student not in run.failed:
                run.pages[student] = pages
            elif student not in run.failed:
                run.failed[student] = "no feedback page was written"
            bar.update(1)
    finally:
        bar.close()
    return run
