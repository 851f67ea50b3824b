"""Collect: bring students' submissions into ``.instructor/submitted/STUDENT/ASSIGNMENT/``.

Two sources are accepted (``python -m grader collect SOURCE``):

* a folder laid out like nbgrader's own ``submitted/``: ``SOURCE/STUDENT/ASSIGNMENT/*.ipynb``
  (other files in an assignment folder are copied along, ``timestamp.txt`` included);
* an LMS download: a ``.zip`` (or a folder) of flat files named after the student::

      STUDENT_ASSIGNMENT.ipynb                        e.g. jdoe_sql_overfitting.ipynb
      STUDENT_ASSIGNMENT_YYYY-MM-DDTHH-MM-SS.ipynb    e.g. jdoe_quiz_2025-05-01T14-03-00.ipynb

  ``STUDENT`` is letters, digits, ``.``, ``-`` and ``_``; ``ASSIGNMENT`` must be one of the
  course's assignment ids (``j_doe_quiz.ipynb`` is student ``j_doe``; a name that reads two
  ways is reported as ambiguous).
  Folders inside the zip are ignored; only file names count. This is the rule of
  :class:`CourseFileNameCollector`, an nbgrader ``zip_collect`` collector plugin, so
  ``nbgrader zip_collect
  --ZipCollectApp.collector_plugin=grader.grading.collect.CourseFileNameCollector`` reads
  names the same way.

Nothing is guessed: a file that does not follow the rule, a notebook with an unexpected
name, an unknown assignment, or two files for the same student and assignment without
timestamps to choose between them are reported and left out; the instructor renames and
collects again. Every collected student is registered in the gradebook.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import List, Unicode, default

from grader.stores.course import Course, CourseError

STUDENT_ID = r"[A-Za-z0-9][A-Za-z0-9._-]*"
TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}"
MAX_FILE_MB = 50
MAX_ARCHIVE_MB = 2048
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
SKIPPED_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}


def lms_pattern(assignments: list[str]) -> str:
    """The regular expression of an LMS file name, for these assignment ids."""
    ids = "|".join(re.escape(a) for a in sorted(assignments, key=len, reverse=True))
    return (
        rf"^(?P<student_id>{STUDENT_ID})_(?P<file_id>{ids})"
        rf"(?:_(?P<timestamp>{TIMESTAMP}))?\.ipynb$"
    )


def parse_lms_name(name: str, assignments: list[str]) -> list[dict]:
    """Every way ``name`` reads as STUDENT_ASSIGNMENT[_TIMESTAMP].ipynb (more than one:
    ambiguous, e.g. ``ann_mini_quiz.ipynb`` with assignments ``quiz`` and ``mini_quiz``)."""
    readings = []
    for assignment in assignments:
        match = re.fullmatch(lms_pattern([assignment]).strip("^$"), name)
        if match:
            readings.append({k: v for k, v in match.groupdict().items() if v is not None})
    return readings


class CourseFileNameCollector(FileNameCollectorPlugin):
    """nbgrader zip_collect plugin: ``STUDENT_ASSIGNMENT[_TIMESTAMP].ipynb`` (see module doc)."""

    assignments = List(
        Unicode(), help="Assignment ids a file name may end with (default: the course's)."
    ).tag(config=True)

    @default("assignments")
    def _assignments_default(self) -> list[str]:
        return Course.from_env().assignments()

    @default("named_regexp")
    def _named_regexp_default(self) -> str:
        return lms_pattern(self.assignments)

    def collect(self, submitted_file: str) -> dict | None:
        name = Path(submitted_file).name
        if not super().collect(name):
            return None
        readings = parse_lms_name(name, self.assignments)
        if len(readings) != 1:  # ambiguous: never guess
            self.log.warning("Ambiguous submission file name: %s", name)
            return None
        info = readings[0]
        if info.get("timestamp"):
            info["timestamp"] = _iso(info["timestamp"])
        return info


def _iso(stamp: str) -> str:
    """2025-05-01T14-03-00 -> 2025-05-01 14:03:00 (what nbgrader's timestamp.txt holds)."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S").isoformat(" ")


@dataclass
class Submission:
    student: str
    assignment: str
    files: dict[str, bytes]  # file name -> content
    timestamp: str | None = None
    origin: str = ""


@dataclass
class CollectReport:
    """What was imported and what was left out, with a reason for each."""

    imported: list[str] = field(default_factory=list)  # "student/assignment: new|updated"
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    students: list[str] = field(default_factory=list)
    destination: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class Collector:
    """Reads a source into :class:`Submission` objects, then writes them to ``submitted/``."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.assignments = course.assignments()
        self.plugin = CourseFileNameCollector(assignments=self.assignments)
        self.report = CollectReport(destination=course.submitted)

    # -- reading -------------------------------------------------------------------------
    def read(self, source: Path) -> list[Submission]:
        source = Path(source)
        if not source.exists():
            raise CourseError(f"nothing to collect: {source} does not exist")
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise CourseError(f"{source} is neither a folder nor a .zip archive")
            return self._from_flat(self._zip_members(source))
        entries = sorted(source.iterdir())
        for link in (p for p in entries if p.is_symlink()):
            self.problem(f"{link}: a symbolic link, not collected")
        entries = [p for p in entries if not p.is_symlink()]
        flat = [p for p in entries if p.is_file() and not _ignored(p.name)]
        folders = [p for p in entries if p.is_dir() and p.name not in SKIPPED_DIRS]
        subs = self._from_flat([(p.name, p.read_bytes(), p.name) for p in flat]) if flat else []
        for folder in sorted(folders):
            subs += self._from_student_folder(folder)
        return subs

    def _zip_members(self, archive: Path) -> list[tuple[str, bytes, str]]:
        members = []
        with zipfile.ZipFile(archive) as zf:
            total = sum(info.file_size for info in zf.infolist())
            if total > MAX_ARCHIVE_MB * 2**20:  # a zip bomb, or not a class's submissions
                raise CourseError(
                    f"{archive} unpacks to {total / 2**20:.0f} MB, over {MAX_ARCHIVE_MB} MB; "
                    "split it, or unpack it yourself and collect the folder"
                )
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or any(p in SKIPPED_DIRS for p in parts):
                    continue
                name = parts[-1]
                if _ignored(name):
                    continue
                if info.file_size > MAX_FILE_MB * 2**20:
                    self.problem(f"{info.filename}: larger than {MAX_FILE_MB} MB, not collected")
                    continue
                members.append((name, zf.read(info), f"{archive.name}:{info.filename}"))
        return members

    def _from_flat(self, files: list[tuple[str, bytes, str]]) -> list[Submission]:
        chosen: dict[tuple[str, str], Submission] = {}
        clashes: dict[tuple[str, str], list[Submission]] = {}
        for name, data, origin in files:
            if not name.endswith(".ipynb"):
                self.problem(f"{origin}: not a notebook (.ipynb), not collected")
                continue
            readings = parse_lms_name(name, self.assignments)
            if len(readings) > 1:
                options = " or ".join(f"{r['student_id']}/{r['file_id']}" for r in readings)
                self.problem(f"{origin}: ambiguous name ({options}); rename it and collect again")
                continue
            info = self.plugin.collect(name)
            if not info:
                self.problem(
                    f"{origin}: name does not follow STUDENT_ASSIGNMENT.ipynb (e.g. "
                    f"jdoe_{self.assignments[-1]}.ipynb); rename it and collect again"
                )
                continue
            sub = Submission(
                info["student_id"],
                info["file_id"],
                {f"{info['file_id']}.ipynb": data},
                info.get("timestamp"),
                origin,
            )
            key = (sub.student, sub.assignment)
            if key in chosen or key in clashes:
                clashes.setdefault(key, [chosen.pop(key)] if key in chosen else []).append(sub)
            else:
                chosen[key] = sub
        for (student, assignment), subs in clashes.items():
            names = ", ".join(s.origin for s in subs)
            stamps = [s.timestamp for s in subs]
            if all(stamps) and len(set(stamps)) == len(stamps):
                newest = max(subs, key=lambda s: s.timestamp or "")
                chosen[(student, assignment)] = newest
                self.problem(
                    f"{student}/{assignment}: {len(subs)} files ({names}); "
                    f"collected the newest, {newest.origin}"
                )
            else:
                self.problem(
                    f"{student}/{assignment}: {len(subs)} files ({names}) and no timestamps to "
                    "choose between them; none collected - keep one and collect again"
                )
        return list(chosen.values())

    def _from_student_folder(self, folder: Path) -> list[Submission]:
        student = folder.name
        if not re.fullmatch(STUDENT_ID, student):
            self.problem(f"{folder}: {student!r} is not a valid student id; not collected")
            return []
        subs = []
        for sub in sorted(p for p in folder.iterdir() if p.name not in SKIPPED_DIRS):
            if sub.is_symlink():
                self.problem(f"{sub}: a symbolic link, not collected")
                continue
            if sub.is_file():
                if not _ignored(sub.name):
                    self.problem(f"{sub}: expected a folder per assignment; file not collected")
                continue
            if sub.name not in self.assignments:
                self.problem(
                    f"{sub}: unknown assignment {sub.name!r} "
                    f"(known: {', '.join(self.assignments)}); not collected"
                )
                continue
            # kept even without a usable notebook: autograde then scores it 0 with the reason
            files = self._assignment_files(sub, self.course.notebooks(sub.name))
            subs.append(Submission(student, sub.name, files, None, str(sub)))
        return subs

    def _assignment_files(self, folder: Path, notebooks: list[str]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        expected = {f"{n}.ipynb" for n in notebooks}
        for path in _walk(folder):
            rel = path.relative_to(folder)
            if any(p in SKIPPED_DIRS for p in rel.parts):
                continue
            if _ignored(path.name):
                continue
            if path.is_symlink():
                self.problem(f"{path}: a symbolic link, not a file; not collected")
                continue
            if path.suffix == ".ipynb" and str(rel) not in expected:
                self.problem(
                    f"{path}: unexpected notebook name (expected {', '.join(sorted(expected))}); "
                    "not collected - rename it and collect again"
                )
                continue
            if path.stat().st_size > MAX_FILE_MB * 2**20:
                self.problem(f"{path}: larger than {MAX_FILE_MB} MB, not collected")
                continue
            files[str(rel)] = path.read_bytes()
        missing = sorted(expected - set(files))
        if missing:
            self.problem(f"{folder}: no {', '.join(missing)} (it will be graded as missing)")
        return files

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    # -- writing --------------------------------------------------------------------------
    def write(self, submissions: list[Submission]) -> CollectReport:
        from nbgrader.api import Gradebook

        self.course.ensure_instructor()
        for sub in sorted(submissions, key=lambda s: (s.student, s.assignment)):
            dest = self.course.submitted / sub.student / sub.assignment
            label = f"{sub.student}/{sub.assignment}"
            if dest.is_dir() and _digest_dir(dest) == _digest_files(sub):
                self.report.unchanged.append(label)
                continue
            state = "updated" if dest.exists() else "new"
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            for name, data in sub.files.items():
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            if sub.timestamp and "timestamp.txt" not in sub.files:
                (dest / "timestamp.txt").write_text(sub.timestamp)
            self.report.imported.append(f"{label}: {state}")
        students = sorted({s.student for s in submissions})
        with Gradebook(self.course.db_url, self.course.coursedir().course_id) as gb:
            for student in students:
                gb.update_or_create_student(student)
        self.report.students = students
        return self.report


def _ignored(name: str) -> bool:
    """Files operating systems leave behind (Finder, Explorer, macOS zip "._" forks)."""
    return name in IGNORED_NAMES or name.startswith("._")


def _walk(folder: Path) -> list[Path]:
    """Files (and links) under ``folder``, without following links to other folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        found += [base / d for d in dirnames if (base / d).is_symlink()]
        found += [base / f for f in filenames]
    return sorted(found)


def _digest_files(sub: Submission) -> dict[str, str]:
    files = dict(sub.files)
    if sub.timestamp and "timestamp.txt" not in files:
        files["timestamp.txt"] = sub.timestamp.encode()
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def _digest_dir(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def collect(course: Course, source: str | Path) -> CollectReport:
    """Import every submission found in ``source`` (see the module docstring for formats)."""
    collector = Collector(course)
    return collector.write(collector.read(Path(source)))
