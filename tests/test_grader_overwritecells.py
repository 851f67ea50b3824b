"""The grader's OverwriteCells: nbgrader's step, its per-cell lookups answered from one read."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import nbformat
import pytest
from nbgrader.preprocessors import OverwriteCells as NbgraderStep
from sqlalchemy import event

from grader.handout.release import register_assignment
from grader.stores.course import Course
from grader.verdicts.overwritecells import OverwriteCells

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "quiz"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    course = Course.from_env(REPO, tmp_path_factory.mktemp("overwrite") / "instructor")
    register_assignment(course, ASSIGNMENT)
    return course


def _released() -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)


def _cells(nb, want):
    return [c for c in nb.cells if want(c.metadata.get("nbgrader", {}))]


def _tamper(nb) -> None:
    """What a student can do to the cells the step restores."""
    locked = _cells(nb, lambda m: m.get("locked") and not m.get("grade"))
    graded = _cells(nb, lambda m: m.get("grade"))
    locked[0].source = "print('rewritten')"  # a read-only cell edited
    graded[0].metadata["nbgrader"]["points"] = 100  # points raised
    graded[1].source = "pass"  # a test cell emptied
    graded[2].metadata["nbgrader"]["locked"] = False  # unlocked
    graded[3].cell_type = "markdown"  # retyped
    graded[3].pop("outputs", None)
    graded[3].pop("execution_count", None)
    nb.cells.remove(graded[4])  # a test cell deleted (add_missing_cells puts it back)
    locked[1].metadata["nbgrader"]["grade_id"] = "made-up"  # an id the gradebook lacks


class PerCellStep(OverwriteCells):
    """Ours with nbgrader's ``preprocess``, which asks the gradebook per cell (the step before)."""

    preprocess = NbgraderStep.preprocess


def _run(step, course: Course, nb):
    resources = {
        "nbgrader": {"notebook": ASSIGNMENT, "assignment": ASSIGNMENT, "db_url": course.db_url}
    }
    out, _ = step(add_missing_cells=True, log=logging.getLogger("test")).preprocess(
        copy.deepcopy(nb), resources
    )
    return out


@pytest.mark.parametrize("tampered", [False, True], ids=["as released", "tampered"])
def test_it_restores_exactly_what_nbgraders_step_restores(course, tampered):
    nb = _released()
    if tampered:
        _tamper(nb)
    ours, theirs = _run(OverwriteCells, course, nb), _run(PerCellStep, course, nb)
    assert ours == theirs
    if tampered:
        assert ours != nb  # something was restored


def test_it_reads_the_master_once_not_per_cell(course):
    """Why: nbgrader asks the gradebook once or twice per cell, holding the lock."""
    from nbgrader.api import Gradebook

    queries = []
    real_init = Gradebook.__init__

    def counting_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        event.listen(self.engine, "before_cursor_execute", lambda *a, **k: queries.append(1))

    nb = _released()
    counts = {}
    for step in (OverwriteCells, PerCellStep):
        queries.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Gradebook, "__init__", counting_init)
            _run(step, course, nb)
        counts[step.__name__] = len(queries)
    graded = len(_cells(nb, lambda m: "grade_id" in m))
    assert counts["PerCellStep"] > graded  # at least one query per such cell
    assert counts["OverwriteCells"] * 3 < counts["PerCellStep"], counts
