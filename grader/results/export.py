"""Export: the grades CSV, written by nbgrader's own ``CsvExportPlugin``, plus a status column.

One row per assignment and student in the gradebook, with nbgrader's columns: assignment,
duedate, timestamp, student_id, last_name, first_name, email, raw_score,
late_submission_penalty, score, max_score. The grader adds ``status``: ``graded``, ``no
submission``, or ``not graded: REASON`` for a submission the grader could not grade (its
score columns are left empty instead of showing a silent 0), from the last autograde run.

Per-student variants: an assignment whose checker defines ``variant_summary(student)`` (the
quiz) gets a ``variant`` column (a short code of the student's variant, the same for the
same id every time) and a file ``variants_ASSIGNMENT.csv`` beside the grades with, per
student, each question's option order, the right letter and the numbers they were given, so
an instructor can read any student's feedback or complaint against the quiz that student saw.

A student on the class list ``INSTRUCTOR/roster.txt`` (one student id a line; the class hub
adds each student at their first login) who is not in the gradebook -- they never submitted
anything -- still gets a row per assignment, with empty scores and status ``no submission``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from grader.stores.course import Course, CourseError

SCORE_COLUMNS = ("raw_score", "late_submission_penalty", "score")


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
        assignments = {
            a.name: {"duedate": str(a.duedate or ""), "max_score": str(a.max_score)}
            for a in gb.assignments
        }
    add_missing_students(course, dest, assignments)
    add_status(course, dest)
    add_variants(course, dest)
    return dest


def _variant_summaries(course: Course, assignment: str):
    """The checker's ``variant_summary`` for an assignment with per-student variants, or None."""
    import sys

    from grader.verdicts.trusted import CheckerError, checker_path, load_checker

    if not checker_path(course.root, assignment).is_file():
        return None
    try:
        load_checker(course.root, assignment)
    except CheckerError:
        return None
    module = sys.modules.get(f"_grader_checker_{assignment.replace('-', '_')}")
    return getattr(module, "variant_summary", None)


def add_variants(course: Course, path: Path) -> list[Path]:
    """Add the ``variant`` column; write ``variants_ASSIGNMENT.csv`` beside the grades CSV."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        columns = list(rows[0].keys()) if rows else []
    if not columns:
        return []
    written: list[Path] = []
    by_assignment: dict[str, list[dict]] = {}
    for row in rows:
        by_assignment.setdefault(row.get("assignment", ""), []).append(row)
    for row in rows:
        row["variant"] = ""
    for assignment, group in sorted(by_assignment.items()):
        summary = _variant_summaries(course, assignment) if assignment else None
        if summary is None:
            continue
        details = []
        for row in group:
            info = summary(row.get("student_id", ""))
            row["variant"] = info["variant"]
            details.append({"student_id": row.get("student_id", ""), **info})
        target = path.parent / f"variants_{assignment}.csv"
        with target.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(details[0]))
            writer.writeheader()
            writer.writerows(sorted(details, key=lambda d: d["student_id"]))
        written.append(target)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "variant"])
        writer.writeheader()
        writer.writerows(rows)
    return written


def roster(course: Course) -> list[str]:
    """The class list: ``INSTRUCTOR/roster.txt``, one student id a line (``#`` comments)."""
    path = course.instructor / "roster.txt"
    if not path.exists():
        return []
    names = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return list(dict.fromkeys(n for n in names if n))


def add_missing_students(
    course: Course, path: Path, gradebook_assignments: dict[str, dict[str, str]] | None = None
) -> None:
    """A row per assignment for each student on the roster the gradebook has never seen.

    The assignments are those of the CSV's rows plus ``gradebook_assignments`` (name ->
    ``duedate``, ``max_score``), so a class where nobody has submitted yet still gets its
    rows (nbgrader then writes the header alone)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if "student_id" not in columns or "assignment" not in columns:
        raise CourseError(f"{path}: not nbgrader's grades CSV (no student_id/assignment column)")
    known = {row.get("student_id", "") for row in rows}
    assignments: dict[str, dict[str, str]] = dict(gradebook_assignments or {})
    for row in rows:
        assignments.setdefault(row.get("assignment", ""), row)
    missing = [s for s in roster(course) if s not in known]
    if not missing or not assignments:
        return
    for student in missing:
        for assignment, example in assignments.items():
            row = dict.fromkeys(columns, "")
            row.update(
                assignment=assignment,
                duedate=example.get("duedate", ""),
                student_id=student,
                max_score=example.get("max_score", ""),
            )
            rows.append({k: v for k, v in row.items() if k in columns})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def run_statuses(course: Course) -> dict[tuple[str, str], str]:
    """(assignment, student) -> status, from each assignment's last autograde record."""
    statuses: dict[tuple[str, str], str] = {}
    if not course.runs.is_dir():
        return statuses
    for record in sorted(course.runs.glob("*.json")):
        try:
            data = json.loads(record.read_text())
            rows = data["results"]
            assignment = str(data["assignment"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for row in rows:
            if not isinstance(row, dict) or "student" not in row:
                continue
            if row.get("status") == "failed":
                status = f"not graded: {row.get('error') or 'unknown reason'}"
            else:
                status = "graded"
            statuses[(assignment, str(row["student"]))] = status
    return statuses


def add_status(course: Course, path: Path) -> None:
    """Add the status column; empty the scores of submissions that were not graded."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        columns = list(rows[0].keys()) if rows else []
    if not columns:
        return
    statuses = run_statuses(course)
    for row in rows:
        status = statuses.get((row.get("assignment", ""), row.get("student_id", "")))
        if status is None:
            status = "graded" if row.get("timestamp") else "no submission"
        row["status"] = " ".join(status.split())  # one line per row
        if status.startswith("not graded"):
            for column in SCORE_COLUMNS:
                if column in row:
                    row[column] = ""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "status"])
        writer.writeheader()
        writer.writerows(rows)
