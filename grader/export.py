"""Export: the grades CSV, written by nbgrader's own ``CsvExportPlugin``.

One row per assignment and student in the gradebook (students without a submission get
0), with nbgrader's columns: assignment, duedate, timestamp, student_id, last_name,
first_name, email, raw_score, late_submission_penalty, score, max_score.
"""

from __future__ import annotations

from pathlib import Path

from grader.course import Course, CourseError


def export_grades(course: Course, dest: Path | None = None) -> Path:
    """Write the grades CSV (default ``.instructor/exports/grades.csv``); return its path."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    if not course.gradebook.exists():
        raise CourseError(f"no gradebook at {course.gradebook}: collect and autograde first")
    dest = Path(dest) if dest else course.exports / "grades.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    cfg = course.config()
    plugin = CsvExportPlugin(config=cfg, to=str(dest))
    with Gradebook(course.db_url, cfg.CourseDirectory.course_id) as gb:
        plugin.export(gb)
    return dest
