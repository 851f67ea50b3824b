"""Before grading a class, grade the master solution in the same sandbox: it must earn full marks.

Why: a broken grading machine (a venv whose editable install points at another checkout, a
missing data folder, a sandbox that cannot read the Python installation) makes every
submission fail the same way, and without this check the class would get zeros. The master
runs through exactly the step students' notebooks run through (the sandboxed kernel and the
trusted checker); if any part fails, grading stops with the cause. A pass is remembered for
the same master, checker, course code and Python, so it costs one run per change.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Protocol

import nbformat
from traitlets.config import Config

from grader.stores.course import Course, CourseError
from grader.verdicts.resources import Shared
from grader.verdicts.sandboxedexecute import SandboxedExecute
from grader.verdicts.trusted import Checker, new_seed


class PreflightRun(Protocol):
    """What the preflight reads of a run (grading/autograde.py's ``Autograder`` has it all).

    A protocol, not an import: the autograder calls the preflight, so the preflight must not
    import the autograder back (tests/test_grader_imports.py)."""

    course: Course
    assignment: str
    notebooks: list[str]
    checker: Checker
    sandbox: bool
    config: Config


class PreflightError(CourseError):
    """The master solution does not earn full marks here: grading would be unfair."""


def _fingerprint(ag: PreflightRun) -> str:
    """What the master's result depends on: its notebooks, checker, course code, Python."""
    digest = hashlib.sha256()
    files = [ag.course.source / ag.assignment / f"{n}.ipynb" for n in ag.notebooks]
    files.append(ag.checker.path)
    here = Path(__file__).resolve().parents[1]  # all of grader/
    import tunelab

    for package in (here, Path(tunelab.__file__).resolve().parent):
        files += sorted(package.rglob("*.py"))
    for path in files:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    digest.update(sys.prefix.encode())
    digest.update(str(ag.sandbox).encode())
    return digest.hexdigest()


def check_master(ag: PreflightRun) -> None:
    """Raise PreflightError naming the cause unless the master earns every point."""
    cache = ag.course.instructor / "preflight" / f"{ag.assignment}.json"
    key = _fingerprint(ag)
    try:
        if json.loads(cache.read_text()).get("fingerprint") == key:
            return
    except (OSError, ValueError, AttributeError):
        pass
    problems: list[str] = []
    for name in ag.notebooks:
        path = ag.course.source / ag.assignment / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix="grader-preflight-") as tmp:
            resources = {
                "metadata": {"path": tmp},
                "grader": Shared(
                    events=[], unlocked=None, checker=ag.checker, seed=new_seed(), verdicts={}
                ),
            }
            step = SandboxedExecute(config=ag.config)
            try:
                step.preprocess(nb, resources)
            except Exception as err:  # noqa: BLE001 (any failure here stops grading)
                raise PreflightError(
                    f"the master solution of {ag.assignment} could not run in the grading "
                    f"sandbox ({type(err).__name__}: {err}); no student was graded. Fix the "
                    "grading machine and run autograde again."
                ) from err
        verdicts = resources["grader"]["verdicts"]
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code":
                continue
            grade_id = meta.get("grade_id", "?")
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if meta.get("grade") and not meta.get("solution"):
                verdict = verdicts.get(grade_id)
                if verdict is None:
                    problems.append(f"{name}.ipynb {grade_id}: no verdict")
                elif not verdict.passed:
                    problems.append(f"{name}.ipynb {grade_id}: {verdict.message}")
            elif errors:
                err = errors[-1]
                text = str(err.get("evalue", "")).strip().splitlines()
                problems.append(
                    f"{name}.ipynb {grade_id} raised {err.get('ename')}"
                    + (f": {text[0][:200]}" if text else "")
                )
    if problems:
        raise PreflightError(
            f"the master solution of {ag.assignment} does not earn full marks in the grading "
            f"sandbox, so grading stopped before any student was graded:\n  "
            + "\n  ".join(problems[:8])
            + "\nFix the grading machine (is the venv's tunelab this checkout's? is data/ "
            "readable?) and run autograde again."
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"fingerprint": key, "checker": ag.checker.sha256}))
