"""Autograde every submission of an assignment: nbgrader's pipeline, sandboxed and in parallel.

Each submission goes through nbgrader's own ``Autograde`` converter (one converter per
student and notebook), configured rather than rewritten:

1. the grader's checks (:mod:`grader.verdicts.checks`): a missing, empty or corrupted notebook
   gets 0 points and a message instead of a traceback;
2. nbgrader's sanitize steps: ``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``,
   ``OverwriteCells`` (edited or deleted test cells come back from the gradebook),
   ``CheckCellMetadata``;
3. nbgrader's autograde steps with ``Execute`` swapped for :class:`~grader.verdicts.
   sandboxedexecute.SandboxedExecute` (see :data:`GRADING_STEPS`).

Only this trusted process touches the gradebook, and only one submission at a time: a lock
is held for everything except running the student's kernel, which happens in the sandbox
while other submissions are saved. Grades therefore do not depend on the number of
workers, and re-running replaces a student's grades instead of adding rows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.converters import Autograde, BaseConverter, NbGraderException
from nbgrader.preprocessors import (
    AssignLatePenalties,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
)
from sqlalchemy.exc import SAWarning
from traitlets.config import Config

from grader.handout.editions import RetranslateEdition, released_copy, submission_language
from grader.sandbox import zygote
from grader.sandbox.bubblewrap import TUNELAB_DIR, check_sandbox
from grader.sandbox.preload import preload_for
from grader.stores.course import Course, CourseError
from grader.stores.logs import captured, failure_reason, message_of
from grader.stores.schema_once import schema_checked_once
from grader.verdicts.checkcellmetadata import CheckCellMetadata
from grader.verdicts.checks import NotebookCheck, check_submission, edited_locked_cells
from grader.verdicts.overwritecells import OverwriteCells
from grader.verdicts.resources import Shared
from grader.verdicts.sandboxedexecute import (
    KERNEL_DIED,
    KERNEL_STUCK,
    NOT_RUN,
    SandboxedExecute,
)
from grader.verdicts.saveverdicts import SaveVerdicts
from grader.verdicts.trusted import Checker, CheckerError, load_checker, new_seed

log = logging.getLogger("grader.autograde")
# nbgrader's own log while it works on a submission: kept per student (logs/autograde/...),
# turned into messages, and not echoed to the console.
nb_log = logging.getLogger("grader.nbgrader")
nb_log.setLevel(logging.INFO)
nb_log.propagate = False
# nbgrader's gradebook code trips this SQLAlchemy warning on every new submission; harmless.
warnings.filterwarnings("ignore", message="Object of type <Submitted", category=SAWarning)

#: nbgrader's ``Autograde.sanitize_preprocessors`` with ``OverwriteCells`` hardened.
SANITIZING_STEPS = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    RetranslateEdition,  # a translated edition's restored cells in its language again
    CheckCellMetadata,
]

#: nbgrader's ``Autograde.autograde_preprocessors`` with ``Execute`` replaced by the sandboxed,
#: trusted-verdict step and ``SaveAutoGrades`` by one that scores verdicts, not outputs.
GRADING_STEPS = [
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveVerdicts,
    AssignLatePenalties,
    CheckCellMetadata,
]


@dataclass
class StudentResult:
    """What autograding one submission produced, in words an instructor can act on."""

    student: str
    assignment: str
    status: str = "graded"  # "graded" or "failed" (no grade could be computed)
    score: float = 0.0
    max_score: float = 0.0
    parts: dict[str, list[float]] = field(default_factory=dict)  # grade id -> [score, max]
    failed_parts: dict[str, str] = field(default_factory=dict)  # grade id -> first error line
    notes: list[str] = field(default_factory=list)  # what went wrong besides failed tests
    error: str | None = None
    seconds: float = 0.0
    seed: int | None = None  # the hidden inputs' seed: a regrade of the same content reuses it
    content: str | None = None  # hash of the submission's cells: a new submission, new inputs
    timed_out: bool = False  # some cell or check ran out of time (regraded alone)
    setup_errors: dict[str, str] = field(default_factory=dict)  # locked cell -> error line
    edition: str = "en"  # the submission's edition (language): "en" or "ru"

    @property
    def message(self) -> str:
        """One line: the score, what went wrong, which tests failed (with the start of each
        error when there are few; all of it is in ``failed_parts`` and the feedback page)."""
        if self.status == "failed":
            return f"not graded: {self.error}"
        text = f"{self.score:g}/{self.max_score:g}"
        details = _compact(self.notes)
        if self.failed_parts:
            few = len(self.failed_parts) <= 3  # then the error text too, else its name only
            failed = ", ".join(
                f"{k} ({_clip(v, 70) if few else v.split(':')[0]})"
                for k, v in self.failed_parts.items()
            )
            details.append(f"failed: {failed}")
        return text + (" - " + "; ".join(details) if details else "")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


@dataclass
class AutogradeRun:
    assignment: str
    results: list[StudentResult]
    seconds: float
    workers: int
    sandboxed: bool
    record: Path | None = None

    @property
    def graded(self) -> list[StudentResult]:
        return [r for r in self.results if r.status == "graded"]

    @property
    def failed(self) -> list[StudentResult]:
        return [r for r in self.results if r.status == "failed"]


class GraderAutograde(Autograde):
    """nbgrader's Autograde converter, telling its steps about the shared gradebook lock."""

    def __init__(self, *, events: list, unlocked, checker=None, seed=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._grader_resources = Shared(
            events=events,
            unlocked=unlocked,
            checker=checker,
            seed=seed,
            verdicts={},
            config=self.config,  # the course's settings (e.g. the answer stubs)
        )

    def init_single_notebook_resources(self, notebook_filename: str) -> dict:
        resources = super().init_single_notebook_resources(notebook_filename)
        resources["grader"] = self._grader_resources
        return resources

    def convert_single_notebook(self, notebook_filename: str) -> None:
        """Autograde.convert_single_notebook without its ``utils.setenv`` wrapper.

        nbgrader 0.9.6's ``setenv`` deletes NBGRADER_EXECUTION on exit (it saves
        ``os.environ.get(value)`` instead of ``get(key)``), which breaks the other threads;
        the grader sets the variable once for the whole run instead.
        """
        self.log.info("Sanitizing %s", notebook_filename)
        self._sanitizing = True
        self._init_preprocessors()
        BaseConverter.convert_single_notebook(self, notebook_filename)
        notebook_filename = os.path.join(
            self.writer.build_directory, os.path.basename(notebook_filename)
        )
        self.log.info("Autograding %s", notebook_filename)
        self._sanitizing = False
        self._init_preprocessors()
        try:
            BaseConverter.convert_single_notebook(self, notebook_filename)
        finally:
            self._sanitizing = True


def autograde_config(
    course: Course,
    *,
    sandbox: bool = True,
    timeout: int | None = None,
    memory_mb: int | None = None,
) -> Config:
    """The course's nbgrader configuration with the grader's steps and limits."""
    extra = Config()
    extra.Autograde.sanitize_preprocessors = SANITIZING_STEPS
    extra.Autograde.autograde_preprocessors = GRADING_STEPS
    # nbconvert validates the whole notebook after every step (13 per submission); once
    # after each pass is enough to catch a broken notebook before it is written
    extra.Exporter.optimistic_validation = True
    extra.SandboxedExecute.sandbox = sandbox
    if timeout is not None:
        extra.SandboxedExecute.timeout = int(timeout)
    if memory_mb is not None:
        extra.Sandbox.memory_mb = int(memory_mb)
    extra.Sandbox.data_dirs = sorted({str(course.root / "data"), str(TUNELAB_DIR.parent / "data")})
    return course.config(extra)


def default_workers() -> int:
    """One more submission in flight than cores: a submission that holds the gradebook lock
    (reading or saving its grades) leaves its core idle, and the extra one fills it."""
    return (os.cpu_count() or 1) + 1


class Autograder:
    """Grades all submissions of one assignment; see the module docstring for the design."""

    def __init__(
        self,
        course: Course,
        assignment: str,
        *,
        workers: int | None = None,
        sandbox: bool = True,
        timeout: int | None = None,
        memory_mb: int | None = None,
        config: Config | None = None,
        new_seeds: bool = False,
        preflight: bool = True,
    ) -> None:
        self.course = course
        self.assignment = assignment
        self.notebooks = course.notebooks(assignment)
        try:
            self.checker: Checker = load_checker(course.root, assignment)
        except CheckerError as err:
            raise CourseError(str(err)) from err
        self.new_seeds = new_seeds
        self.preflight = preflight
        self.workers = max(1, workers or default_workers())
        self.sandbox = sandbox
        self.config = autograde_config(
            course, sandbox=sandbox, timeout=timeout, memory_mb=memory_mb
        )
        masters = [course.source / assignment / f"{nb}.ipynb" for nb in self.notebooks]
        self.config.Sandbox.zygote_preload = list(
            preload_for(masters, self.checker.module, self.checker.preload)
        )
        if config is not None:
            self.config.merge(config)
        self.lock = threading.Lock()

    # -- public ------------------------------------------------------------------------
    def students(self) -> list[str]:
        """Students with a submission folder for this assignment."""
        if not self.course.submitted.is_dir():
            return []
        return sorted(
            p.name
            for p in self.course.submitted.iterdir()
            if (p / self.assignment).is_dir() and not p.name.startswith(".")
        )

    def run(self, students: list[str] | None = None, *, progress: bool = False) -> AutogradeRun:
        from grader.handout.release import assignment_in_gradebook, register_assignment

        self._check_machine()
        self.course.ensure_instructor()
        if not assignment_in_gradebook(self.course, self.assignment):
            log.warning("registering %s in the gradebook from solutions/", self.assignment)
            register_assignment(self.course, self.assignment)
        names = self.students() if students is None else students
        lock = self.course.instructor / ".autograde.lock"
        with _exclusive(lock), zygote.in_use(), _as_nbgrader_autograde(), schema_checked_once():
            if self.preflight and names:
                self._preflight()  # in the students' environment, so it shares their zygote
            return self._run(names, progress)

    # Where student code runs: here. grader.grading.distributed.DaskAutograder overrides these two
    # (and the execution step) to run it on a Dask cluster's workers instead.
    def _check_machine(self) -> None:
        """Refuse to grade where student code cannot be sandboxed."""
        if self.sandbox:
            reason = check_sandbox()
            if reason:
                raise CourseError(
                    f"cannot sandbox student code: {reason}. Fix that, or grade without a "
                    "sandbox (python -m grader autograde --no-sandbox) on a machine where "
                    "running students' code unconfined is acceptable."
                )

    def _preflight(self) -> None:
        """The master must earn full marks where the students' code will run."""
        from grader.verdicts.preflight import check_master

        check_master(self)

    def _run(self, names: list[str], progress: bool) -> AutogradeRun:
        started = time.perf_counter()
        cwd = os.getcwd()
        results: list[StudentResult] = []
        self._seeds = self._stored_seeds()
        bar = _progress(len(names), f"autograde {self.assignment}", progress)
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="grade") as pool:
                futures = {pool.submit(self.grade_one, s): s for s in names}
                for future in as_completed(futures):
                    results.append(future.result())
                    bar.update(1)
            results = self._regrade_timeouts_alone(results)
            _flag_setup_failures(results)
        finally:
            bar.close()
            os.chdir(cwd)  # nbgrader converters chdir to the course root
        results.sort(key=lambda r: r.student)
        run = AutogradeRun(
            self.assignment, results, time.perf_counter() - started, self.workers, self.sandbox
        )
        run.record = self._write_record(run)
        return run

    def grade_one(self, student: str) -> StudentResult:
        """Grade one submission; never raises (a failure becomes the result's error)."""
        started = time.perf_counter()
        result = StudentResult(student, self.assignment)
        result.content = self.content_hash(student)
        stored = self._seeds.get(student)
        if stored is not None and stored[1] == result.content:
            result.seed = stored[0]  # a regrade of the same submission: the same hidden inputs
        else:
            result.seed = new_seed()  # a new submission never meets inputs shown before
        try:
            self._grade(student, result)
        except Exception as err:  # noqa: BLE001 (the batch must go on)
            log.exception("grading %s failed", student)
            result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    # -- one submission ------------------------------------------------------------------
    def _grade(self, student: str, result: StudentResult) -> None:
        folder = self.course.submitted / student / self.assignment
        checks, notes = check_submission(folder, self.notebooks)
        result.notes += notes
        for check in checks:
            if check.ok:
                result.edition = submission_language(check.path)
                released = released_copy(
                    self.course.release, self.assignment, check.name, result.edition
                )
                if not released.exists():
                    released = self.course.release / self.assignment / check.path.name
                result.notes += edited_locked_cells(check.path, released)
        events: list[dict] = []
        with self.lock, captured(nb_log, logging.INFO) as records:
            self._record_unreadable(student, [c for c in checks if not c.ok])
            errors = []
            for check in checks:
                if check.ok:
                    error = self._convert(student, check.name, events, records, result.seed)
                    if error:
                        errors.append(f"{check.name}.ipynb: {error}")
            self._write_log(student, records)
            result.notes += [f"{c.problem} - scored 0" for c in checks if not c.ok]
            result.notes += _notes_from_log(records) + _notes_from_events(events)
            result.timed_out = any(e["kind"] in _TIME_EVENTS for e in events)
            # every notebook failed to convert: nothing was scored, not even a zero, so the
            # instructor must look (an unreadable notebook still scores 0 and counts as graded)
            if len(errors) == len(checks):
                result.status, result.error = "failed", "; ".join(errors)
                return
            result.notes += [f"not graded: {e}" for e in errors]
            self._read_grades(student, result)

    def _convert(
        self, student: str, notebook: str, events: list, records: list, seed: int | None
    ) -> str | None:
        """Run nbgrader's Autograde converter on one notebook; return an error or None."""
        coursedir = self.course.coursedir(
            self.config, assignment_id=self.assignment, student_id=student, notebook_id=notebook
        )
        converter = GraderAutograde(
            coursedir=coursedir,
            config=self.config,
            log=nb_log,
            events=events,
            unlocked=self._unlocked,
            checker=self.checker,
            seed=seed,
        )
        converter.force = True
        mark = len(records)
        try:
            converter.start()
        except NbGraderException as err:
            return failure_reason(records[mark:]) or str(err)
        return None

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Let other submissions use the gradebook while this one's kernel runs."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def _record_unreadable(self, student: str, bad: list[NotebookCheck]) -> None:
        """Zero the notebooks that cannot be graded, as nbgrader does for missing ones."""
        from nbgrader.api import Gradebook

        if not bad:
            return
        coursedir = self.course.coursedir(self.config)
        timestamp = coursedir.get_existing_timestamp(
            str(self.course.submitted / student / self.assignment)
        )
        with Gradebook(self.course.db_url, coursedir.course_id) as gb:
            gb.update_or_create_student(student)
            kwargs = {"timestamp": timestamp} if timestamp else {}
            gb.update_or_create_submission(self.assignment, student, **kwargs)
            for check in bad:
                notebook = gb.find_submission_notebook(check.name, self.assignment, student)
                for grade in notebook.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
                gb.db.commit()
                stale = self.course.autograded / student / self.assignment / f"{check.name}.ipynb"
                if stale.exists():
                    stale.chmod(0o644)
                    stale.unlink()

    def _read_grades(self, student: str, result: StudentResult) -> None:
        from nbgrader.api import Gradebook

        with Gradebook(self.course.db_url) as gb:
            submission = gb.find_submission(self.assignment, student)
            result.score = float(submission.score)
            result.max_score = float(submission.max_score)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    result.parts[grade.name] = [float(grade.score), float(grade.max_score)]
        for name in self.notebooks:
            path = self.course.autograded / student / self.assignment / f"{name}.ipynb"
            if path.exists():
                failed, notes, setup = _read_outputs(path)
                result.failed_parts.update(failed)
                result.notes += [n for n in notes if n not in result.notes]
                result.setup_errors.update(setup)

    def content_hash(self, student: str) -> str:
        """What the submission says, hashed: every cell's type and source of its notebooks.

        Outputs, metadata and timestamps are left out, so re-running a notebook or collecting
        it again is the same submission; a changed answer (or any edited cell) is a new one.
        """
        import hashlib

        digest = hashlib.sha256()
        folder = self.course.submitted / student / self.assignment
        for name in sorted(self.notebooks):
            digest.update(f"\0notebook {name}\0".encode())
            try:
                cells = json.loads((folder / f"{name}.ipynb").read_bytes())["cells"]
                for cell in cells:
                    source = cell.get("source", "")
                    text = "".join(source) if isinstance(source, list) else str(source)
                    digest.update(f"\0{cell.get('cell_type')}\0{text}".encode())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                digest.update(b"\0unreadable")
        return digest.hexdigest()

    def _stored_seeds(self) -> dict[str, tuple[int, str | None]]:
        """Each student's seed and content hash from the last run: a regrade of the same
        submission draws the same hidden inputs, a new submission new ones."""
        path = self.course.runs / f"{self.assignment}.json"
        if self.new_seeds or not path.exists():
            return {}
        try:
            rows = json.loads(path.read_text())["results"]
        except (ValueError, KeyError, TypeError):
            return {}
        return {
            r["student"]: (r["seed"], r.get("content"))
            for r in rows
            if isinstance(r, dict)
            and type(r.get("seed")) is int
            and isinstance(r.get("student"), str)
        }

    def _regrade_timeouts_alone(self, results: list[StudentResult]) -> list[StudentResult]:
        """Regrade, one at a time and with nothing beside them, submissions that ran out of time.

        A hostile neighbour can slow an honest submission graded in parallel until its cells
        time out. Only a timeout graded alone counts, so a neighbour costs nobody points.
        """
        if self.workers < 2 or len(results) < 2:
            return results
        again = [r.student for r in results if r.timed_out]
        if not again:
            return results
        log.warning("regrading %d submission(s) that timed out, one at a time", len(again))
        redone = {}
        for student in again:
            result = self.grade_one(student)
            result.notes.append("ran out of time in parallel grading; regraded alone")
            redone[student] = result
        return [redone.get(r.student, r) for r in results]

    # -- records ---------------------------------------------------------------------------
    def _write_log(self, student: str, records: list[logging.LogRecord]) -> None:
        folder = self.course.instructor / "logs" / "autograde" / self.assignment
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"[{r.levelname}] {message_of(r)}" for r in records]
        (folder / f"{student}.log").write_text("\n".join(lines) + "\n")

    def _write_record(self, run: AutogradeRun) -> Path:
        """Latest result of every student graded so far (a partial re-run updates its own)."""
        self.course.runs.mkdir(parents=True, exist_ok=True)
        path = self.course.runs / f"{self.assignment}.json"
        latest: dict[str, dict] = {}
        if path.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                latest = {r["student"]: r for r in json.loads(path.read_text())["results"]}
        for result in run.results:
            latest[result.student] = asdict(result) | {"message": result.message}
        data = {
            "assignment": run.assignment,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(run.seconds, 2),
            "workers": run.workers,
            "sandboxed": run.sandboxed,
            "results": [latest[name] for name in sorted(latest)],
        }
        path.write_text(json.dumps(data, indent=1))
        return path


@contextlib.contextmanager
def _as_nbgrader_autograde() -> Iterator[None]:
    """NBGRADER_EXECUTION=autograde for a whole run, the preflight included.

    nbgrader's converter would toggle it per thread (see ``convert_single_notebook``). Set
    before the preflight, the master's kernel sees what the students' kernels see, and the
    zygote (keyed on the kernels' environment) started for the master serves the class: set
    after it, a second zygote was started, 4 s more per run.
    """
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = previous


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One autograde per gradebook at a time, across processes (its lock covers one run)."""
    import fcntl

    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CourseError(
                f"another autograde is running on {path.parent}; wait for it to finish"
            ) from None
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def autograde(course: Course, assignment: str, **kwargs) -> AutogradeRun:
    """Grade every collected submission of ``assignment`` (see :class:`Autograder`)."""
    progress = kwargs.pop("progress", False)
    students = kwargs.pop("students", None)
    return Autograder(course, assignment, **kwargs).run(students, progress=progress)


# -- turning nbgrader's log and the sandbox's events into messages -----------------------------
_CHANGE_WORDS = {
    "checksum": "",  # expected for cells with hidden tests; edits come from edited_locked_cells
    "points": "had its points changed; the original points were used",
    "locked": "was unlocked; it was locked again",
    "cell_type": "had its cell type changed; it was changed back",
}


def _notes_from_log(records: list[logging.LogRecord]) -> list[str]:
    notes: list[str] = []
    for record in records:
        if record.levelno < logging.WARNING:
            continue
        text = message_of(record)
        args = record.args if isinstance(record.args, tuple) else ()
        if text.startswith("Attribute '") and len(args) >= 2:
            what = _CHANGE_WORDS.get(str(args[0]), f"had its {args[0]} changed")
            if what:
                notes.append(f"cell {args[1]} {what}")
        elif text.startswith("Missing grade cell"):
            cell = text.split("Missing grade cell ", 1)[1].split(" encountered")[0]
            notes.append(f"test cell {cell} was deleted; it was restored and graded")
        elif text.startswith("Cell with id") and args:
            notes.append(f"cell {args[0]} was duplicated; only its last copy was graded")
        elif text.endswith("does not exist in the database"):
            notes.append(f"{text.split(' does not')[0].lower()} is not part of the assignment")
        elif "seconds late" in text:
            notes.append(text)
    return list(dict.fromkeys(notes))


_EDITED = re.compile(
    r"^(test cell|read-only cell) (\S+) was edited; the original was graded instead$"
)
_UNANSWERED = re.compile(r"^(\S+) not answered$")


def _compact(notes: list[str]) -> list[str]:
    """Merge notes that differ only by cell ("q1 not answered", "q2 not answered", ...)."""
    cells: dict[tuple[str, str], list[str]] = {}
    order: list[str | tuple[str, str]] = []
    for note in notes:
        if match := _EDITED.match(note):
            key, cell = ("edited", match.group(1)), match.group(2)
        elif match := _UNANSWERED.match(note):
            key, cell = ("unanswered", ""), match.group(1)
        else:
            order.append(note)
            continue
        if key not in cells:
            cells[key] = []
            order.append(key)
        cells[key].append(cell)
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
        elif item[0] == "unanswered":
            out.append(f"not answered: {', '.join(cells[item])}")
        elif len(cells[item]) == 1:
            out.append(f"{item[1]} {cells[item][0]} was edited; the original was graded instead")
        else:
            names = ", ".join(cells[item])
            out.append(f"{item[1]}s {names} were edited; the originals were graded instead")
    return out


def _notes_from_events(events: list[dict]) -> list[str]:
    notes = []
    for event in events:
        where = event.get("grade_id") or (
            f"cell {event['cell'] + 1}" if event.get("cell") is not None else ""
        )
        kind = event["kind"]
        if kind == "timeout":
            notes.append(f"{where} timed out ({event['detail']}) and was interrupted")
        elif kind == "kernel_died":
            notes.append(f"the kernel died in {where}; later cells ran in a fresh kernel")
        elif kind == "kernel_stuck":
            notes.append(f"{where} could not be interrupted; the kernel was restarted")
        elif kind == "notebook_timeout":
            notes.append(f"{event['detail']}; cells from {where} on were not run")
        elif kind == "note":
            notes.append(f"{where}: {event['detail']}")
        elif kind == "forked":
            notes.append(
                f"{where} left {event['detail']} running; they were stopped, and the cell is "
                "never re-run after a restart"
            )
        elif kind == "checker_error":
            notes.append(f"{where}: {event['detail']}")
        elif kind == "output_truncated":
            notes.append(f"{where} printed too much; its output was truncated")
    return list(dict.fromkeys(notes))


def _read_outputs(path: Path) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """From an autograded notebook: failed tests (first error line) and notes on answers.

    A test cell passes in nbgrader when it shows no error; an answer cell's error is not
    scored itself but usually explains the failed test after it, so it is named too.
    """
    nb = nbformat.read(path, as_version=4)
    failed: dict[str, str] = {}
    notes: list[str] = []
    setup: dict[str, str] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        where = meta.get("grade_id") or f"cell {index + 1}"
        outputs = cell.get("outputs", [])
        if any(_is_truncated(o) for o in outputs) and not any(where in n for n in notes):
            notes.append(f"{where} printed too much; its output was truncated")
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if not errors:
            continue
        err = errors[-1]
        value = str(err.get("evalue", "")).strip().splitlines()
        line = err["ename"] + (f": {value[0][:120]}" if value else "")
        if meta.get("grade"):
            failed[meta["grade_id"]] = line
        elif meta.get("locked") and err["ename"] not in _REPORTED_ELSEWHERE:
            setup[where] = line
        elif meta.get("solution") and err["ename"] == "NotImplementedError":
            notes.append(f"{where} not answered")
        elif (
            meta.get("solution")
            and err["ename"] not in _REPORTED_ELSEWHERE
            and not any(where in n for n in notes)
        ):
            notes.append(f"{where} raised {err['ename']}")
    return failed, notes, setup


_TIME_EVENTS = ("timeout", "kernel_stuck", "notebook_timeout")

#: A locked cell failing the same way in at least this share of a class (and 3 submissions)
#: is the grading machine's fault, not the students'.
SETUP_FAILURE_SHARE = 0.5


def _flag_setup_failures(results: list[StudentResult]) -> None:
    """Turn class-wide failures of one locked cell into 'not graded', never into zeros."""
    graded = [r for r in results if r.status == "graded"]
    counts: dict[tuple[str, str], int] = {}
    for result in graded:
        for key in result.setup_errors.items():
            counts[key] = counts.get(key, 0) + 1
    for (cell, error), count in counts.items():
        if count >= 3 and count >= SETUP_FAILURE_SHARE * len(graded):
            for result in graded:
                if result.setup_errors.get(cell) == error:
                    result.status = "failed"
                    result.error = (
                        f"the locked cell {cell} failed with {error} in {count} of "
                        f"{len(graded)} submissions: a grading-machine problem (fix it and "
                        "regrade), not the student's"
                    )


# errors the sandboxed step writes itself; _notes_from_events already says what happened
_REPORTED_ELSEWHERE = (KERNEL_DIED, KERNEL_STUCK, "CellTimeoutError", NOT_RUN)


def _is_truncated(output: dict) -> bool:
    text = output.get("text", "") if output.get("output_type") == "stream" else ""
    return "output truncated" in text or "Output truncated" in text


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="student", disable=not enabled)
