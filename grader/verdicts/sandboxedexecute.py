"""nbgrader's Execute step with a sandboxed kernel, and a grade for every cell whatever happens.

Stock ``Execute`` gives up on the whole submission when the kernel dies (``os._exit``, a
crash, a CPU limit) or ignores an interrupt, and the student gets no grade at all. This
step keeps going:

* a cell that times out is interrupted and gets nbgrader's ``CellTimeoutError`` output;
* a cell that kills the kernel, or cannot be interrupted, gets an error output saying so;
  the kernel is restarted and the cells that had run cleanly before it are replayed
  silently, so later, independent parts are still graded (at most ``max_kernel_restarts``);
* a cell that never ran (the kernel could not be brought back, or the whole notebook ran
  past ``notebook_timeout``) gets an error output too,
  so a test cell can never pass by not running (nbgrader scores a test cell without an
  error output as passed);
* what a cell sends is capped per cell (``max_output_chars``) and per notebook
  (``max_notebook_output``), counting every message's whole content; a cell's first error
  is always kept, clipped to ``max_error_chars``.

The kernel itself is started by ``kernel_manager_class``: :class:`grader.sandbox.bubblewrap.
SandboxedKernelManager` by default, the stock manager with ``python -m grader autograde
--no-sandbox``. What happened is recorded in ``resources['grader']['events']`` for the
per-student message.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import time
from pathlib import Path
from typing import Any

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode, default

from grader.handout.editions import edition_language
from grader.verdicts.trusted import (
    CheckerError,
    Context,
    ProbeFailed,
    Verdict,
    parse_answer,
    probe_code,
    unjudgeable,
)

#: The environment variable that tells the kernel whose submission it runs (see
#: ``tunelab.checks.quiz.resolve_student``); empty for the master's preflight.
STUDENT_ENV = "TUNELAB_STUDENT_ID"

KERNEL_DIED = "KernelDied"
KERNEL_STUCK = "KernelUnresponsive"
NOT_RUN = "CellNotRun"


class SandboxError(RuntimeError):
    """The sandbox could not start a kernel at all: a grading-machine problem, not the student's."""


class SandboxedExecute(Execute):
    """Execute every code cell in a sandboxed kernel, recovering from dead or stuck kernels."""

    max_kernel_restarts = Integer(
        3, help="Kernel restarts allowed per notebook before the remaining cells are given up."
    ).tag(config=True)
    replay_after_restart = Bool(
        True,
        help="After a restart, silently re-run the cells that had succeeded, to restore state.",
    ).tag(config=True)
    notebook_timeout = Integer(
        900,
        help="Wall-clock seconds for a whole notebook; cells not started by then are not run.",
    ).tag(config=True)
    max_output_chars = Integer(
        2_000_000,
        help="Characters of output (all message content) kept per cell.",
    ).tag(config=True)
    max_notebook_output = Integer(
        8_000_000,
        help="Characters of output kept for the whole notebook, all cells together.",
    ).tag(config=True)
    max_error_chars = Integer(
        20_000,
        help="Characters kept of an error's message and of its traceback.",
    ).tag(config=True)
    sandbox = Bool(
        True,
        help="Run kernels in a bubblewrap sandbox (False: nbgrader's own, unconfined kernels).",
    ).tag(config=True)
    shutdown_kernel = Unicode("immediate").tag(config=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)  # nbgrader pins kernel_manager_class in its __init__
        if self.sandbox:
            from grader.sandbox.bubblewrap import SandboxedKernelManager

            self.kernel_manager_class = SandboxedKernelManager

    @default("extra_arguments")
    def _extra_arguments_default(self) -> list[str]:
        if self.sandbox:  # the sandboxed kernel loads the guard from its path by itself
            return []
        return ["--InteractiveShellApp.extensions=grader.sandbox.kernel_guard"]

    @default("startup_timeout")
    def _startup_timeout_default(self) -> int:
        return 60

    # -- the step --------------------------------------------------------------------
    def preprocess(self, nb: NotebookNode, resources: dict, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        grader_res = resources.setdefault("grader", {})
        self.events: list[dict[str, Any]] = grader_res.setdefault("events", [])
        self._chars: dict[int, int] = {}
        self._pending_notes: dict[int, list[str]] = {}
        self._truncated: set[int] = set()
        self._pending_truncation: dict[int, str] = {}
        self._total = 0
        self._checker = grader_res.get("checker")
        self._seed = grader_res.get("seed")
        self._student = _student_of(resources)
        self._verdicts: dict[str, Verdict] = grader_res.setdefault("verdicts", {})
        unlocked = grader_res.get("unlocked") or contextlib.nullcontext
        with unlocked():  # other submissions may use the gradebook while this one runs
            self._run_all(nb, resources)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _run_all(self, nb: NotebookNode, resources: dict) -> None:
        """Run the student's cells in order, then judge the test cells after the last one.

        Why last: a probe sends hidden inputs into the kernel, and a student's function can
        keep them (its frames, a global); a later cell that printed them would put them on
        the feedback page. After the last cell nothing of the student's runs again except
        the probes themselves, whose outputs are discarded.
        """
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        #: the kernel's CPU seconds by what it was doing (logged; the benchmark reads it)
        self._cpu = dict.fromkeys(("start", "solution", "course", "checks", "other"), 0.0)
        self._cpu_last = 0.0
        self._start_kernel(first=True)
        self._given_up: str | None = None
        self._restarts = 0
        self._deadline = time.monotonic() + self.notebook_timeout
        clean: list[int] = []  # cells that ran without an error: replayed after a restart
        deferred: list[int] = []  # test cells, judged after the last cell
        try:
            for index in code:
                cell = nb.cells[index]
                if self._out_of_time(cell, index):
                    continue
                if self._checker is not None and _is_test_cell(cell):
                    deferred.append(index)  # decided by the trusted checker, later
                    continue
                problem = self._run_cell(cell, resources, index)
                forked = self._reap(index)  # nothing a cell started outlives it
                self._account("solution" if _is_solution_cell(cell) else "course")
                if problem is None:
                    if self._timed_out(cell):
                        self._event("timeout", index, f"stopped after {self.timeout} s")
                    elif not _has_error(cell) and not forked:
                        clean.append(index)  # cells that forked are never replayed
                    continue
                self._mark(cell, *problem)
                self._recover(nb, problem, index, clean)
            for index in deferred:
                self._judge_deferred(nb, index, clean)
                self._account("checks")
        finally:
            self._stop_kernel()
            cpu = {key: round(value, 3) for key, value in self._cpu.items()}
            resources.setdefault("grader", {})["kernel_cpu"] = cpu
            self.log.info("kernel CPU seconds: %s", json.dumps(cpu))

    def _judge_deferred(self, nb: NotebookNode, index: int, clean: list[int]) -> None:
        """Judge one test cell; if the kernel hung or died under it, judge it once more.

        Why again: the probes run after the student's last cell, in a kernel that holds
        everything the notebook built. A part's probe can stall because *another* cell left
        the kernel at its memory limit (a list of millions of objects kept in a global), not
        because this part's answer is wrong. After the restart only the cells that ran
        cleanly are replayed, so the second try judges the answer on its own; an answer that
        hangs by itself hangs again and fails, at the cost of one more timeout.
        """
        for attempt in (1, 2):
            cell = nb.cells[index]
            if self._out_of_time(cell, index):
                return
            problem = self._judge_cell(cell, index)
            self._reap(index)
            if problem is None:
                return
            self._recover(nb, problem, index, clean)
            if attempt == 2 or self._given_up:
                return
            self._event(
                "note",
                index,
                "it was checked again in a fresh kernel (the earlier cells that ran cleanly "
                "were re-run first)",
            )

    def _out_of_time(self, cell, index: int) -> bool:
        """True (and the cell marked, a test cell failed) once the notebook has given up."""
        if not self._given_up and time.monotonic() > self._deadline:
            self._given_up = f"the notebook used up its {self.notebook_timeout} s"
            self._event("notebook_timeout", index, self._given_up)
        if not self._given_up:
            return False
        self._mark(cell, NOT_RUN, f"This cell was not run: {self._given_up}.")
        if self._checker is not None and _is_test_cell(cell):
            self._record(cell, Verdict.fail(f"Not checked: {self._given_up}."))
        return True

    def _recover(self, nb: NotebookNode, problem: tuple[str, str], index: int, clean: list[int]):
        """The kernel died or hung under a cell or a probe: restart it and replay clean cells."""
        ename, text = problem
        self._event("kernel_died" if ename == KERNEL_DIED else "kernel_stuck", index, text)
        self._restarts += 1
        if self._restarts > self.max_kernel_restarts:
            self._given_up = f"the kernel failed {self._restarts} times"
            return
        try:
            self._restart_kernel()
            if self.replay_after_restart:
                self._replay(nb, clean)
            self._account("other")
        except Exception as err:  # noqa: BLE001 (any failure: give up the rest)
            self._given_up = f"the kernel could not be restarted ({_short(err)})"

    def _run_cell(self, cell, resources, index) -> tuple[str, str] | None:
        """Run one cell; return (error name, message) when the kernel failed under it."""
        self._chars[index] = 0
        try:
            self.preprocess_cell(cell, resources, index)
        except DeadKernelError:
            return KERNEL_DIED, (
                "The kernel stopped while running this cell (it crashed, called os._exit(), "
                "or hit a resource limit). Later cells ran in a fresh kernel."
            )
        except CellTimeoutError:
            return KERNEL_STUCK, (
                f"This cell was still running after {self.timeout} s and did not stop when "
                "interrupted, so the kernel was restarted. Later cells ran in a fresh kernel."
            )
        except Exception as err:  # noqa: BLE001 (a broken kernel connection, bad messages...)
            return (
                KERNEL_DIED,
                f"Running this cell failed: {_short(err)}. The kernel was restarted.",
            )
        return None

    # -- trusted verdicts (grader.verdicts.trusted) ----------------------------------------
    def _judge_cell(self, cell, index: int) -> tuple[str, str] | None:
        """Decide a test cell with the trusted checker instead of running its code.

        Returns (error name, message) when the kernel died or hung under a probe, so the
        caller restarts it as after a cell; the part itself is already decided (failed).
        """
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        self._probe_problem: tuple[str, str] | None = None
        ctx = Context(
            grade_id=grade_id,
            seed=int(self._seed or 0),
            probe_fn=lambda module, part, payload: self._probe(index, module, part, payload),
            module=self._checker.module,
            course_root=self._course_root(),
            lang=edition_language(self.nb),
            student=self._student,
            memo=self._memo,
        )
        try:
            verdict = self._checker.judge(grade_id, ctx)
        except ProbeFailed as err:
            verdict = Verdict.fail(f"{grade_id} could not be checked: {err}.")
            verdict.notes = ctx.notes
        except CheckerError:
            raise  # the course's checker is broken for every student: stop (preflight says so)
        except Exception as err:  # noqa: BLE001 (one bad answer fails one part, never the rest)
            verdict = Verdict.fail(unjudgeable(grade_id, ctx.lang))
            verdict.notes = ctx.notes
            self._event(
                "checker_error",
                index,
                f"the checker raised {type(err).__name__}: {str(err)[:200]} "
                "(the part was failed, the others graded)",
            )
            self.log.warning("checker error on %s", grade_id, exc_info=True)
        self._record(cell, verdict)
        return self._probe_problem

    def _course_root(self) -> Path:
        """The course whose data the checker reads: solutions/ASSIGNMENT/checker.py's root."""
        return Path(self._checker.path).resolve().parents[2]

    def _probe(self, index: int, module: str, part: str, payload) -> object:
        """Run one probe cell in the kernel and decode its answer (see grader.verdicts.trusted)."""
        if self._probe_problem is not None:
            raise ProbeFailed("the kernel failed during an earlier probe of this part")
        nonce = f"@@grader-{secrets.token_hex(16)}@@"
        probe = new_code_cell(probe_code(nonce, module, part, payload))
        original = self.nb.cells[index]
        self._chars[index] = 0
        try:
            self.execute_cell(probe, index, store_history=False)
        except DeadKernelError:
            self._probe_problem = (KERNEL_DIED, "The kernel stopped while this part was checked.")
            raise ProbeFailed("the kernel stopped while your code ran") from None
        except CellTimeoutError:
            self._probe_problem = (
                KERNEL_STUCK,
                f"Your code ran for over {self.timeout} s while this part was checked.",
            )
            raise ProbeFailed(f"your code ran for over {self.timeout} s") from None
        finally:
            self.nb.cells[index] = original
        if self._timed_out(probe):
            raise ProbeFailed(f"your code ran for over {self.timeout} s and was interrupted")
        stdout = "".join(
            o.get("text", "")
            for o in probe.outputs
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        stderr = "".join(
            o.get("text", "")
            for o in probe.outputs
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
        ).strip()
        if stderr:  # what it wrote is not shown: it may hold the hidden inputs
            self._notes_for(index).append(
                "your code wrote to stderr while being checked (this costs nothing; what it "
                "wrote is not shown, since it ran on the grader's hidden inputs)"
            )
        errors = [o for o in probe.outputs if o.get("output_type") == "error"]
        try:
            return parse_answer(stdout, nonce)
        except ProbeFailed:
            if errors:
                raise ProbeFailed(
                    f"the check could not run in your kernel ({str(errors[-1].get('ename'))[:80]})"
                ) from None
            raise

    def _notes_for(self, index: int) -> list[str]:
        return self._pending_notes.setdefault(index, [])

    def _record(self, cell, verdict: Verdict) -> None:
        """The verdict becomes the cell's only outputs (and, later, its score)."""
        index = self.nb.cells.index(cell) if cell in self.nb.cells else -1
        notes = list(dict.fromkeys(verdict.notes + self._pending_notes.pop(index, [])))
        verdict.notes = notes
        self._verdicts[cell.metadata["nbgrader"]["grade_id"]] = verdict
        for note in notes:
            self._event("note", index if index >= 0 else None, note)
        outputs = []
        if notes:
            text = "".join(f"Note: {n}\n" for n in notes)
            outputs.append(new_output("stream", name="stdout", text=text))
        if verdict.passed:
            outputs.append(new_output("stream", name="stdout", text=verdict.message + "\n"))
        else:
            outputs.append(
                new_output(
                    "error",
                    ename="AssertionError",
                    evalue=verdict.message,
                    traceback=[f"AssertionError: {verdict.message}"],
                )
            )
        cell.outputs = outputs

    def _reap(self, index: int) -> int:
        """Stop every process a cell left running (a fork bomb, a busy child in its own
        session), so it cannot slow other submissions; the count is noted."""
        kill = getattr(self.km, "kill_strays", None)
        if kill is None:
            return 0
        try:
            count = int(kill())
        except Exception as err:  # noqa: BLE001 (the sandbox may already be gone)
            self.log.debug("kill_strays: %s", err)
            return 0
        if count:
            self._event("forked", index, f"{count} process(es)")
        return count

    # -- kernel lifecycle --------------------------------------------------------------------
    def _start_kernel(self, first: bool = False) -> None:
        self._memo: dict[str, Any] = {}  # probe_once's answers: none yet from this kernel
        km = self.km = self.create_kernel_manager()  # nbclient drops self.km when start fails
        cwd = self.resources.get("metadata", {}).get("path") or None
        # the collected id, so a notebook with per-student variants shows the graded one
        student_env = {STUDENT_ENV: self._student}
        kwargs: dict[str, Any] = {}
        if getattr(km, "sandbox", None) is not None:
            km.sandbox.env = {**km.sandbox.env, **student_env}
        else:
            import os

            kwargs["env"] = {**os.environ, **student_env}
        try:
            self.start_new_kernel(cwd=cwd, **kwargs)
            self.start_new_kernel_client()
            assert self.kc is not None
            info = self.wait_for_reply(self.kc.kernel_info())
            if info is not None and "language_info" in info["content"]:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            self._cpu_last = 0.0
            self._account("start")
        except Exception as err:
            detail = getattr(km, "stderr_tail", lambda: "")()
            self._stop_kernel()
            if getattr(km, "_remove_scratch", None):
                km._remove_scratch()
            if first:
                raise SandboxError(
                    f"could not start a kernel: {_short(err)}" + (f" [{detail}]" if detail else "")
                ) from err
            raise

    def _account(self, what: str) -> None:
        """Charge the kernel's CPU time since the last mark to ``what`` (a restarted kernel
        counts from 0 again: its time so far is its start)."""
        if not hasattr(self, "_cpu"):
            return
        used = getattr(self.km, "cpu_seconds_used", None)
        now = used() if used is not None else None
        if now is None:
            return
        self._cpu[what] += max(0.0, now - self._cpu_last)
        self._cpu_last = now

    def _stop_kernel(self) -> None:
        km = self.km
        self._account("other")
        try:
            if km is not None:
                self._cleanup_kernel()
        except Exception as err:  # noqa: BLE001 (the kernel is going away regardless)
            self.log.debug("kernel cleanup: %s", err)
        finally:
            remove_scratch = getattr(km, "_remove_scratch", None)
            if remove_scratch is not None:
                remove_scratch()
            self.km = None
            self.kc = None

    def _restart_kernel(self) -> None:
        self._stop_kernel()
        self._start_kernel()

    def _replay(self, nb: NotebookNode, indices: list[int]) -> None:
        """Re-run earlier successful cells on copies, discarding what they print."""
        for index in indices:
            original = nb.cells[index]
            self._chars[index] = 0
            try:
                self.execute_cell(copy.deepcopy(original), index, store_history=False)
            finally:
                nb.cells[index] = original  # nbclient stores the executed copy in its place
        if indices:
            self._event("replayed", None, f"re-ran {len(indices)} earlier cell(s) after a restart")

    # -- outputs ---------------------------------------------------------------------------
    # Every message a kernel sends counts against two budgets, per cell and per notebook, by
    # its whole JSON content (text, data of every mime type, metadata, error text): streams,
    # display data, results, updates of earlier displays and widget messages alike. A hostile
    # kernel can otherwise grow the graded notebook and the feedback page without bound.
    def _charge(self, cell_index: int, size: int) -> bool:
        """Take ``size`` characters from the cell's and the notebook's budgets, if both allow."""
        used = self._chars.get(cell_index, 0)
        if used + size > self.max_output_chars or self._total + size > self.max_notebook_output:
            if cell_index not in self._truncated:
                self._truncated.add(cell_index)
                limit = (
                    f"{self.max_output_chars:,} characters in one cell"
                    if used + size > self.max_output_chars
                    else f"{self.max_notebook_output:,} characters in the notebook"
                )
                self._pending_truncation[cell_index] = limit
                self._event("output_truncated", cell_index, f"over {limit}")
            return False
        self._chars[cell_index] = used + size
        self._total += size
        return True

    def output(self, outs, msg, display_id, cell_index):
        if self.clear_before_next_output:
            self._release(cell_index)
        content = msg.get("content", {})
        if msg["msg_type"] == "error":
            _clip_error(content, self.max_error_chars)
            first = not any(o.get("output_type") == "error" for o in outs)
            if not self._charge(cell_index, _size(content)) and not first:
                return None  # the first error is always kept (bounded by the clip)
            return super().output(outs, msg, display_id, cell_index)
        if not self._charge(cell_index, _size(content)):
            if self._pending_truncation.pop(cell_index, None) is not None:
                outs.append(
                    new_output(
                        "stream",
                        name="stderr",
                        text="\n... output truncated by the grader: this cell (or the notebook) "
                        "printed more than it may ...\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id: str, msg: dict) -> None:
        """An update rewrites every output showing that display: charge each copy."""
        targets = self._display_id_map.get(display_id, {})
        size = _size(msg.get("content", {}))
        for cell_index, indices in targets.items():
            if not self._charge(cell_index, size * len(indices)):
                return
        super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs, msg, cell_index):
        """Widget messages end up in the notebook's metadata: they count too."""
        if not self._charge(cell_index, _size(msg.get("content", {}))):
            return None
        return super().handle_comm_msg(outs, msg, cell_index)

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self._release(cell_index)

    def _release(self, cell_index: int) -> None:
        """Outputs cleared from a cell give their characters back."""
        self._total -= self._chars.get(cell_index, 0)
        self._chars[cell_index] = 0

    # -- helpers ---------------------------------------------------------------------------
    def _timed_out(self, cell) -> bool:
        ename = self.error_on_timeout.get("ename") if self.error_on_timeout else None
        return any(
            o.get("output_type") == "error" and o.get("ename") == ename for o in cell.outputs
        )

    def _mark(self, cell, ename: str, text: str) -> None:
        cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
        cell.outputs.append(
            new_output("error", ename=ename, evalue=text, traceback=[f"{ename}: {text}"])
        )

    def _event(self, kind: str, cell_index: int | None, detail: str) -> None:
        grade_id = None
        if cell_index is not None:
            grade_id = self.nb.cells[cell_index].metadata.get("nbgrader", {}).get("grade_id")
        self.events.append(
            {"kind": kind, "cell": cell_index, "grade_id": grade_id, "detail": detail}
        )


def _is_test_cell(cell) -> bool:
    """An autograded test cell: a locked code grade cell that is not an answer."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _is_solution_cell(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _has_error(cell) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def _size(content: dict) -> int:
    """Characters of a message's whole content (text, data, metadata, error text...)."""
    try:
        return len(json.dumps(content, default=str))
    except (TypeError, ValueError, RecursionError):
        return 1 << 40  # unmeasurable: refuse it


def _clip_error(content: dict, limit: int) -> None:
    """Bound an error's name, message and traceback (they are kept even past the caps)."""
    content["ename"] = str(content.get("ename", "Error"))[:200]
    content["evalue"] = str(content.get("evalue", ""))[:limit]
    lines = [str(line)[:limit] for line in content.get("traceback") or []]
    kept: list[str] = []
    used = 0
    for line in reversed(lines):  # the end of a traceback says where it failed
        if used + len(line) > limit:
            kept.append("... (traceback shortened by the grader)")
            break
        kept.append(line)
        used += len(line)
    content["traceback"] = list(reversed(kept))


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _student_of(resources: dict) -> str:
    """The id the submission was collected under: nbgrader's, else the autograded folder's.

    nbgrader's converter records the student; a Dask worker gets the coordinator's folder
    (``submitted/STUDENT/ASSIGNMENT`` or ``autograded/...``) as the kernel's working
    directory instead. The master's preflight has neither: "".
    """
    student = (resources.get("nbgrader") or {}).get("student")
    if isinstance(student, str) and student:
        return student
    path = Path(str((resources.get("metadata") or {}).get("path") or ""))
    if len(path.parts) >= 3 and path.parent.parent.name in ("submitted", "autograded"):
        return path.parent.name
    return ""
