"""Where a course lives, and the nbgrader configuration that points at it.

Why a class: the same grading code runs on the real course (this repository, gradebook in
``.instructor/``), on the demo class (``.instructor/demo/``) and on tiny fixture courses the
tests build in temporary directories. Every command takes a :class:`Course` and builds its
nbgrader ``Config`` from ``grader/nbgrader_config.py`` plus the course's own paths, so plain
``nbgrader`` and ``python -m grader`` always agree on settings.

The gradebook is ``INSTRUCTOR/gradebook.db`` (SQLite, one instructor) unless the course is
given a database server's URL (``--db-url`` or ``$TUNELAB_GRADEBOOK_URL``, e.g.
``postgresql://grader:PASSWORD@db.example.org/course``), which several graders can share.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grader.stores.errors import CourseError  # also imported from here, beside Course
from grader.stores.gradebook import ServerGradebook, ensure_gradebook, is_server_url

REPO = Path(__file__).resolve().parents[2]
#: stays at grader/nbgrader_config.py: plain nbgrader, the hub and instructors' own
#: nbgrader_config.py files (``load_subconfig``) name it by that path
CONFIG_FILE = REPO / "grader" / "nbgrader_config.py"
ENV_INSTRUCTOR = "TUNELAB_INSTRUCTOR_ROOT"
ENV_COURSE = "TUNELAB_COURSE_DIR"
ENV_GRADEBOOK = "TUNELAB_GRADEBOOK_URL"

#: instructor folder -> the server gradebook a course with that folder was given: a course
#: derived from it (``Course(course.root, course.instructor, dest)``) keeps the same gradebook.
_SERVER_GRADEBOOKS: dict[Path, str] = {}


def _tools_on_path() -> None:
    """nbgrader shells out to ``alembic`` when it creates a gradebook: make the venv's copy
    findable even when the venv is not activated (``.venv/bin/python -m grader``)."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p]])


_tools_on_path()


@dataclass(frozen=True)
class Course:
    """A course directory (``solutions/``, ``notebooks/``, ``data/``) and its instructor root."""

    root: Path = REPO
    instructor: Path = field(default=REPO / ".instructor")
    release_dir: Path | None = None  # default: root / "notebooks"
    #: a gradebook URL (``postgresql://...`` shared by several graders, or ``sqlite:///FILE``);
    #: None: ``INSTRUCTOR/gradebook.db``, or the URL an earlier course with this folder had
    gradebook_url: str | None = None

    def __post_init__(self) -> None:
        key = Path(self.instructor)
        if self.gradebook_url:
            if is_server_url(self.gradebook_url):
                _SERVER_GRADEBOOKS[key] = self.gradebook_url
        elif key in _SERVER_GRADEBOOKS:
            object.__setattr__(self, "gradebook_url", _SERVER_GRADEBOOKS[key])

    @classmethod
    def from_env(
        cls,
        course_dir: str | os.PathLike | None = None,
        instructor_root: str | os.PathLike | None = None,
        db_url: str | None = None,
    ) -> Course:
        """The course named by arguments, else by $TUNELAB_COURSE_DIR / $TUNELAB_INSTRUCTOR_ROOT
        (and its gradebook by ``db_url``, else $TUNELAB_GRADEBOOK_URL, else the SQLite file)."""
        root = Path(course_dir or os.environ.get(ENV_COURSE) or REPO).resolve()
        instructor = instructor_root or os.environ.get(ENV_INSTRUCTOR) or root / ".instructor"
        url = db_url or os.environ.get(ENV_GRADEBOOK) or None
        return cls(root=root, instructor=Path(instructor).resolve(), gradebook_url=url)

    # -- paths -------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        return self.root / "solutions"

    @property
    def release(self) -> Path:
        return self.release_dir or self.root / "notebooks"

    @property
    def shared_gradebook(self) -> bool:
        """True when the gradebook is on a database server (PostgreSQL), not a SQLite file."""
        return is_server_url(self.gradebook_url)

    @property
    def gradebook(self) -> Path | ServerGradebook:
        """The SQLite file, or a :class:`~grader.stores.gradebook.ServerGradebook` standing for the
        server's database (``exists()`` and ``str()`` work on both)."""
        if self.shared_gradebook:
            return ServerGradebook(self.gradebook_url)
        if self.gradebook_url and self.gradebook_url.startswith("sqlite:///"):
            return Path(self.gradebook_url.removeprefix("sqlite:///"))
        return self.instructor / "gradebook.db"

    @property
    def db_url(self) -> str:
        """nbgrader's ``CourseDirectory.db_url`` for this course."""
        if self.shared_gradebook:
            return str(self.gradebook_url)
        return f"sqlite:///{self.gradebook}"

    @property
    def submitted(self) -> Path:
        return self.instructor / "submitted"

    @property
    def autograded(self) -> Path:
        return self.instructor / "autograded"

    @property
    def feedback(self) -> Path:
        return self.instructor / "feedback"

    @property
    def exports(self) -> Path:
        return self.instructor / "exports"

    @property
    def reports(self) -> Path:
        return self.instructor / "reports"

    @property
    def runs(self) -> Path:
        """Per-assignment JSON records of the last autograde run (messages per student)."""
        return self.instructor / "runs"

    # -- assignments -------------------------------------------------------------------
    def assignments(self) -> list[str]:
        """Assignment ids: every folder of ``solutions/`` holding a notebook."""
        if not self.source.is_dir():
            raise CourseError(f"no solutions/ folder in {self.root}: is this the course directory?")
        return sorted(
            p.name for p in self.source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
        )

    def notebooks(self, assignment: str) -> list[str]:
        """Notebook names (without .ipynb) of an assignment's master."""
        folder = self.source / assignment
        if not folder.is_dir():
            known = ", ".join(self.assignments()) or "none"
            raise CourseError(f"unknown assignment {assignment!r} (known: {known})")
        return sorted(p.stem for p in folder.glob("*.ipynb"))

    def is_graded(self, assignment: str) -> bool:
        """True when the master has at least one autograded test cell worth points."""
        for name in self.notebooks(assignment):
            nb = nbformat.read(self.source / assignment / f"{name}.ipynb", as_version=4)
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("grade") and cell.cell_type == "code" and meta.get("points", 0) > 0:
                    return True
        return False

    def graded_assignments(self) -> list[str]:
        return [a for a in self.assignments() if self.is_graded(a)]

    # -- nbgrader configuration -------------------------------------------------------------
    def config(self, extra: Config | None = None) -> Config:
        """grader/nbgrader_config.py, re-pointed at this course and instructor root."""
        cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
        cd = cfg.CourseDirectory
        cd.root = str(self.root)
        cd.release_directory = str(self.release)
        cd.submitted_directory = str(self.submitted)
        cd.autograded_directory = str(self.autograded)
        cd.feedback_directory = str(self.feedback)
        cd.db_url = self.db_url
        if extra is not None:
            cfg.merge(extra)
        return cfg

    def coursedir(self, config: Config | None = None, **traits):
        """An nbgrader CourseDirectory for this course (one per thread: it is mutable)."""
        from nbgrader.coursedir import CourseDirectory

        cd = CourseDirectory(config=config or self.config())
        for name, value in traits.items():
            setattr(cd, name, value)
        return cd

    def ensure_instructor(self) -> None:
        """Create the instructor folder and an empty gradebook nbgrader will fill."""
        self.instructor.mkdir(parents=True, exist_ok=True)
        ensure_gradebook(self.gradebook)  # a server gradebook: its tables, created once
