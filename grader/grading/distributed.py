"""Grading beyond one machine: each submission's kernel runs on a ``dask.distributed`` worker.

``python -m grader autograde ASSIGNMENT --scheduler tcp://HOST:8786`` grades exactly as the
local autograde does (:mod:`grader.grading.autograde`: nbgrader's ``Autograde`` converter, one per
submission and notebook, in a pool of threads), with one step moved out:

* **coordinator** (this process, the only one that touches the gradebook): nbgrader's
  sanitize steps (``OverwriteCells`` reads the master's cells from the gradebook), then
  :class:`RemoteExecute` in the place of ``SandboxedExecute``: it sends the sanitized
  notebook to the cluster and waits (without the gradebook lock, like a local kernel run),
  then puts the executed notebook, the trusted verdicts, the sandbox's events and its log
  where ``SandboxedExecute`` would have left them; nbgrader's ``SaveVerdicts`` /
  ``AssignLatePenalties`` record the grades, the autograded notebook, the per-student log and
  ``runs/ASSIGNMENT.json`` are written, all here, all as in local grading.
* **worker**: :func:`grade_on_worker`, a pure function of plain data. It runs
  ``SandboxedExecute`` (the bubblewrap sandbox, resource limits, the trusted checker's
  probes) on the notebook and returns the executed notebook's JSON, the verdicts ``{grade_id:
  {passed, message, notes}}``, the events, its log lines and timings. It never opens the
  gradebook, so running it twice changes nothing.

What a worker needs: **the course checkout at the same path** as the coordinator's (the
checker is loaded from ``COURSE/solutions/ASSIGNMENT/checker.py`` and must hash the same as
the coordinator's, or the submission is not graded; the checker reads ``COURSE/data``), this
project's venv (the same packages), bubblewrap, and root (or unprivileged user namespaces).
The instructor folder is not needed there: files the assignment declares in
``Sandbox.extra_files`` travel in the payload.

A worker that dies mid-submission (killed, out of memory, machine lost) loses nothing:
the scheduler hands the task to another worker (and ``retries`` re-runs one that raised),
the coordinator waits for the one result of each (student, notebook) and applies it once,
and the grade rows are updated in place, never added. Each submission keeps its hidden-input
seed, so a re-run draws the same inputs. Before a class is graded, every connected worker
grades the master solution (:func:`preflight_on_worker`, cached per worker machine), so a
broken worker stops the run instead of zeroing a class.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
from traitlets import Any as AnyTrait
from traitlets.config import Config

from grader.grading.autograde import GRADING_STEPS, Autograder, AutogradeRun
from grader.stores.course import Course, CourseError
from grader.verdicts.sandboxedexecute import SandboxedExecute
from grader.verdicts.trusted import Checker, Verdict

log = logging.getLogger("grader.distributed")

#: Re-runs of a submission whose task raised on a worker (a worker that died is not counted:
#: the scheduler reschedules its tasks by itself, up to distributed's ``allowed-failures``).
RETRIES = 2
#: Seconds a worker may take to answer beyond the notebook's own time limit.
MARGIN = 300


class CheckerMismatch(CourseError):
    """A worker's checkout holds another checker than the coordinator's."""


# -- the coordinator's side ---------------------------------------------------------------------
class Dispatcher:
    """Sends one notebook to the cluster and waits for its result (thread-safe)."""

    def __init__(self, client, worker_config: Config, *, retries: int, timeout: float) -> None:
        self.client = client
        self.worker_config = worker_config
        self.retries = retries
        self.timeout = timeout

    def __deepcopy__(self, memo: dict) -> Dispatcher:  # traitlets copies config values
        return self

    def __call__(self, payload: dict) -> dict:
        name = "-".join(str(payload[k]) for k in ("assignment", "student", "notebook"))
        future = self.client.submit(
            grade_on_worker,
            payload,
            key=f"grade-{name}-{uuid.uuid4().hex[:8]}",
            pure=False,
            retries=self.retries,
        )
        try:
            return future.result(timeout=self.timeout)
        finally:
            future.release()


class RemoteExecute(SandboxedExecute):
    """``SandboxedExecute``'s place in the grading steps, running the kernel on a worker."""

    dispatcher = AnyTrait(None, allow_none=True).tag(config=True)

    def preprocess(self, nb, resources: dict, km=None):
        if self.dispatcher is None:
            raise CourseError("RemoteExecute has no Dask dispatcher configured")
        grader_res = resources.setdefault("grader", {})
        events = grader_res.setdefault("events", [])
        verdicts = grader_res.setdefault("verdicts", {})
        checker: Checker | None = grader_res.get("checker")
        meta = resources.get("nbgrader", {})
        workdir = resources.get("metadata", {}).get("path") or ""
        payload = {
            "assignment": meta.get("assignment"),
            "student": meta.get("student"),
            "notebook": meta.get("notebook"),
            "notebook_json": nbformat.writes(nb),
            "workdir": workdir,
            "files": _declared_files(workdir, self.dispatcher.worker_config),
            "seed": grader_res.get("seed"),
            "checker": _checker_ref(checker),
            "config": self.dispatcher.worker_config,
            "env": _passed_env(self.dispatcher.worker_config),
            "sandbox": self.sandbox,
        }
        unlocked = grader_res.get("unlocked") or contextlib.nullcontext
        with unlocked():  # other submissions may use the gradebook while this one runs
            started = time.perf_counter()
            result = self.dispatcher(payload)
            waited = time.perf_counter() - started
        for level, text in result["log"]:
            self.log.log(level, text)
        self.log.info(
            "graded on worker %s (%s) in %.2f s; round trip %.2f s",
            result["worker"],
            result["host"],
            result["seconds"],
            waited,
        )
        events.extend(result["events"])
        for grade_id, verdict in result["verdicts"].items():
            verdicts[grade_id] = Verdict(verdict["passed"], verdict["message"], verdict["notes"])
        executed = nbformat.reads(result["notebook_json"], as_version=nbformat.NO_CONVERT)
        self.nb = executed
        return executed, resources


class DaskAutograder(Autograder):
    """:class:`~grader.grading.autograde.Autograder` whose kernels run on a Dask cluster.

    ``scheduler``: the scheduler's address (``tcp://HOST:8786``) or a connected
    ``distributed.Client``. ``workers`` (coordinator threads, i.e. submissions in flight)
    defaults to the cluster's worker threads.
    """

    def __init__(
        self,
        course: Course,
        assignment: str,
        *,
        scheduler,
        workers: int | None = None,
        retries: int = RETRIES,
        connect_timeout: float = 60.0,
        **kwargs,
    ) -> None:
        super().__init__(course, assignment, workers=workers or 1, **kwargs)
        from distributed import Client

        if isinstance(scheduler, Client):
            self.client, self._own_client = scheduler, False
        else:
            try:
                self.client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as err:
                raise CourseError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from err
            self._own_client = True
        self.scheduler = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=connect_timeout)
        except TimeoutError as err:
            self.close()
            raise CourseError(
                f"no Dask worker joined the scheduler {self.scheduler} within "
                f"{connect_timeout:.0f} s: start some (grader/README.md, 'Grading on a Dask "
                "cluster')"
            ) from err
        self.workers = workers or max(1, sum(self.client.nthreads().values()))
        steps = [RemoteExecute if s is SandboxedExecute else s for s in GRADING_STEPS]
        self.config.Autograde.autograde_preprocessors = steps
        worker_config = copy.deepcopy(self.config)
        step = SandboxedExecute(config=worker_config)
        timeout = step.notebook_timeout + step.startup_timeout * (step.max_kernel_restarts + 1)
        self.config.RemoteExecute.dispatcher = Dispatcher(
            self.client, worker_config, retries=retries, timeout=(timeout + MARGIN) * (retries + 1)
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> DaskAutograder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, students: list[str] | None = None, *, progress: bool = False) -> AutogradeRun:
        run = super().run(students, progress=progress)
        run.scheduler = self.scheduler
        return run

    # -- the hooks of Autograder -------------------------------------------------------------
    def _check_machine(self) -> None:
        """Student code runs on the workers: each checks its sandbox (preflight, every task)."""

    def _preflight(self) -> None:
        """Every connected worker grades the master first; any failure stops the run."""
        from grader.verdicts.preflight import PreflightError

        workers = sorted(self.client.nthreads())
        payload = {
            "assignment": self.assignment,
            "course_root": str(self.course.root),
            "notebooks": list(self.notebooks),
            "checker": _checker_ref(self.checker),
            "config": self.config.RemoteExecute.dispatcher.worker_config,
            "env": {},
            "sandbox": self.sandbox,
        }
        futures = {
            address: self.client.submit(
                preflight_on_worker,
                payload,
                key=f"preflight-{self.assignment}-{uuid.uuid4().hex[:8]}",
                workers=[address],
                allow_other_workers=False,
                pure=False,
            )
            for address in workers
        }
        problems = []
        for address, future in futures.items():
            try:
                future.result(timeout=900)
            except PreflightError as err:
                problems.append(f"worker {address}: {err}")
            except Exception as err:  # noqa: BLE001 (a worker lost, a timeout: all stop the run)
                problems.append(f"worker {address}: {type(err).__name__}: {err}")
        if problems:
            raise PreflightError("\n".join(problems))


def dask_autograde(course: Course, assignment: str, *, scheduler, **kwargs) -> AutogradeRun:
    """Grade every collected submission of ``assignment`` on the Dask cluster at ``scheduler``."""
    progress = kwargs.pop("progress", False)
    students = kwargs.pop("students", None)
    with DaskAutograder(course, assignment, scheduler=scheduler, **kwargs) as grader:
        return grader.run(students, progress=progress)


# -- the worker's side ------------------------------------------------------------------------
def grade_on_worker(payload: dict) -> dict:
    """Execute one sanitized notebook in the sandbox and judge its test cells; plain data out.

    ``payload``: ``notebook_json``, ``workdir`` (the coordinator's autograded folder: the
    kernel's working directory), ``files`` (declared extra files, relative path -> bytes),
    ``seed``, ``checker`` (path, sha256, assignment), ``config`` (the grader's nbgrader
    config), ``env``, ``sandbox``. Returns ``notebook_json``, ``verdicts`` ({grade_id:
    {passed, message, notes}}), ``events``, ``log`` ([(level, text)]), ``seconds``,
    ``worker`` and ``host``. Touches no gradebook and no file of the coordinator's.
    """
    from grader.stores.logs import captured, message_of
    from grader.verdicts.resources import Shared

    started = time.perf_counter()
    config = _prepare_process(payload)
    checker = _checker(payload["checker"])
    nb = nbformat.reads(payload["notebook_json"], as_version=nbformat.NO_CONVERT)
    logger = logging.getLogger("grader.worker")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with _workdir(payload["workdir"], payload["files"]) as workdir:
        shared = Shared(
            events=[], unlocked=None, checker=checker, seed=payload["seed"], verdicts={}
        )
        resources = {"metadata": {"path": workdir}, "grader": shared}
        with captured(logger, logging.INFO) as records:
            step = SandboxedExecute(config=config, log=logger)
            nb, resources = step.preprocess(nb, resources)
    return {
        "notebook_json": nbformat.writes(nb),
        "verdicts": {
            grade_id: {"passed": bool(v.passed), "message": str(v.message), "notes": list(v.notes)}
            for grade_id, v in shared["verdicts"].items()
        },
        "events": [dict(e) for e in shared["events"]],
        "log": [(r.levelno, message_of(r)) for r in records],
        "seconds": round(time.perf_counter() - started, 3),
        "worker": _worker_address(),
        "host": socket.gethostname(),
    }


def preflight_on_worker(payload: dict) -> str:
    """Grade the master on this worker (:func:`grader.verdicts.preflight.check_master`); its host.

    The pass is cached on the worker's machine (by master, checker, code and Python), so a
    worker grades each master once per change.
    """
    from grader.verdicts.preflight import check_master

    config = _prepare_process(payload)
    checker = _checker(payload["checker"])
    root = Path(payload["course_root"])
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / "tunelab-grader-worker" / digest
    course = Course(root=root, instructor=cache)
    grader = SimpleNamespace(
        course=course,
        assignment=payload["assignment"],
        notebooks=payload["notebooks"],
        checker=checker,
        config=config,
        sandbox=payload["sandbox"],
    )
    check_master(grader)
    return socket.gethostname()


_PROCESS_LOCK = threading.Lock()
_CHECKERS: dict[tuple[str, str], Checker] = {}
_SANDBOX_REASON: list[str] = []
_UID_SLOT: list = []  # [slot, open lock file]: held for the worker process's life


def _prepare_process(payload: dict) -> Config:
    """The worker's config for this task; the sandbox checked once per worker process."""
    from grader.sandbox.bubblewrap import check_sandbox

    os.environ.update(payload.get("env") or {})
    config = copy.deepcopy(payload["config"])
    with _PROCESS_LOCK:
        if payload["sandbox"] and not _SANDBOX_REASON:
            _SANDBOX_REASON.append(check_sandbox() or "")
        slot = _uid_slot()
    if payload["sandbox"] and _SANDBOX_REASON[0]:
        raise CourseError(
            f"worker {socket.gethostname()} cannot sandbox student code: {_SANDBOX_REASON[0]}"
        )
    base = int(config.Sandbox.get("uid_base", 61000)) if "Sandbox" in config else 61000
    config.Sandbox.uid_base = base + 64 * slot
    return config


def _uid_slot() -> int:
    """A slot of 64 sandbox uids no other worker process on this machine uses.

    Sandboxes of one process never share a uid (``grader.sandbox.bubblewrap.UIDS``); two worker
    processes on one machine would both start at 61000, so each takes a slot (held by a lock
    file for its life): slot N starts at 61000 + 64 N. Slot 0 stays the local grader's.
    """
    if _UID_SLOT:
        return _UID_SLOT[0]
    folder = Path(tempfile.gettempdir()) / "tunelab-grader-uid-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    for slot in range(1, 64):
        handle = open(folder / f"{slot}.lock", "w")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _UID_SLOT.extend([slot, handle])
        return slot
    raise CourseError("more than 63 grading worker processes on one machine")


def _checker(ref: dict | None) -> Checker | None:
    """The assignment's checker from this machine's checkout, verified against the
    coordinator's (same path, same sha256)."""
    from grader.verdicts.trusted import load_checker

    if ref is None:
        return None
    path = Path(ref["path"])
    key = (str(path), ref["sha256"])
    with _PROCESS_LOCK:
        if key in _CHECKERS:
            return _CHECKERS[key]
        if not path.is_file():
            raise CheckerMismatch(
                f"worker {socket.gethostname()} has no {path}: every worker needs the course "
                "checkout at the same path as the coordinator's"
            )
        checker = load_checker(path.parents[2], ref["assignment"])
        if checker.sha256 != ref["sha256"]:
            raise CheckerMismatch(
                f"worker {socket.gethostname()}'s {path} differs from the coordinator's: "
                "update the course checkout on every worker"
            )
        _CHECKERS[key] = checker
        return checker


def _checker_ref(checker: Checker | None) -> dict | None:
    if checker is None:
        return None
    return {"path": str(checker.path), "sha256": checker.sha256, "assignment": checker.assignment}


@contextlib.contextmanager
def _workdir(path: str, files: dict[str, bytes]) -> Iterator[str]:
    """The kernel's working directory at the coordinator's path: that folder where this
    machine has it (the same machine, or a shared file system), else one made for the task
    holding only the declared files (removed afterwards)."""
    if not path:
        yield ""
        return
    folder = Path(path)
    if folder.is_dir():
        yield path
        return
    made = next(p for p in [folder, *folder.parents] if p.parent.exists())
    try:
        folder.mkdir(parents=True)
        for relative, data in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield path
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _declared_files(workdir: str, config: Config) -> dict[str, bytes]:
    """The files ``Sandbox.extra_files`` lets into the sandbox, read by the coordinator (links
    never followed, as in
    :meth:`grader.sandbox.bubblewrap.SandboxedKernelManager._prepare_workdir`)."""
    from grader.sandbox.bubblewrap import _relative, _without_links

    names = list(config.Sandbox.get("extra_files", [])) if "Sandbox" in config else []
    if not workdir or not names:
        return {}
    folder = Path(workdir).resolve()
    found: dict[str, bytes] = {}
    for name in names:
        relative = _relative(name)
        source = _without_links(folder, relative) if relative is not None else None
        if source is None:
            continue
        paths = [source] if source.is_file() else sorted(source.rglob("*"))
        for item in paths:
            if item.is_file() and not item.is_symlink():
                found[str(item.relative_to(folder))] = item.read_bytes()
    return found


def _passed_env(config: Config) -> dict[str, str]:
    """The variables the sandbox passes to kernels, as the coordinator has them."""
    from grader.sandbox.bubblewrap import Sandbox

    names = Sandbox(config=config).pass_env
    return {name: os.environ[name] for name in names if name in os.environ}


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


# -- a local cluster (tests, benchmark, a single big machine) -----------------------------------
@contextlib.contextmanager
def local_cluster(workers: int = 2, threads: int = 1) -> Iterator[Any]:
    """A scheduler and ``workers`` worker processes on this machine (nannies restart a killed
    one); yields the connected ``distributed.Client``."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(workers, timeout=120)
        yield client
