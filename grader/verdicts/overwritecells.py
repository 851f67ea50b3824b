"""nbgrader's OverwriteCells step, safe for cells that lost their grade id, and one query.

nbgrader 0.9.6 strips the grade id of a duplicated cell (``DeduplicateIds``) or of a cell
whose id the gradebook does not know, but then, with ``add_missing_cells`` on, indexes
``metadata["nbgrader"]["grade_id"]`` of every cell that still has nbgrader metadata and
fails the whole submission with ``KeyError: 'grade_id'``. Such a cell is, after those
steps, an ordinary cell: this step says so by dropping its leftover nbgrader metadata.

nbgrader also asks the gradebook for the master's copy of every cell with a grade id, one
or two SQL queries per cell, each compiled anew (about 40 ms of the grader's CPU per quiz
submission, while it holds the gradebook lock that the other submissions wait for). This
step reads the notebook's master cells once per submission and answers those questions
from them; nbgrader's code decides what to restore, unchanged.
"""

from __future__ import annotations

from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import OverwriteCells as NbgraderOverwriteCells


class _MasterCells:
    """The gradebook as OverwriteCells uses it, its per-cell lookups answered from one read
    of the notebook's master cells; everything else goes to the real gradebook."""

    def __init__(self, gradebook: Gradebook, notebook: str, assignment: str) -> None:
        self._gradebook = gradebook
        self._where = (notebook, assignment)
        self._source: dict[str, Any] = {}
        self._graded: dict[str, Any] = {}
        try:
            master = gradebook.find_notebook(notebook, assignment)
        except MissingEntry:  # no such notebook: every cell is unknown, as nbgrader finds
            return
        self._source = {cell.name: cell for cell in master.source_cells}
        self._graded = {cell.name: cell for cell in master.task_cells}
        self._graded.update({cell.name: cell for cell in master.grade_cells})  # as nbgrader

    def _find(self, table: dict[str, Any], kind: str, name: str, notebook: str, assignment: str):
        if (notebook, assignment) != self._where:  # not this notebook: ask the gradebook
            return getattr(self._gradebook, f"find_{kind}")(name, notebook, assignment)
        try:
            return table[name]
        except KeyError:
            what = kind.replace("_", " ")
            raise MissingEntry(f"No such {what}: {assignment}/{notebook}/{name}") from None

    def find_source_cell(self, name: str, notebook: str, assignment: str):
        return self._find(self._source, "source_cell", name, notebook, assignment)

    def find_graded_cell(self, name: str, notebook: str, assignment: str):
        return self._find(self._graded, "graded_cell", name, notebook, assignment)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gradebook, name)


class OverwriteCells(NbgraderOverwriteCells):
    """Restore graded and read-only cells from the gradebook (nbgrader's step, hardened)."""

    def preprocess(self, nb, resources):
        # nbgrader's preprocess, with the per-cell lookups served from one read
        self.notebook_id = resources["nbgrader"]["notebook"]
        self.assignment_id = resources["nbgrader"]["assignment"]
        self.db_url = resources["nbgrader"]["db_url"]
        with Gradebook(self.db_url) as gradebook:
            self.gradebook = _MasterCells(gradebook, self.notebook_id, self.assignment_id)
            for index, cell in enumerate(nb.cells):
                nb.cells[index], resources = self.preprocess_cell(cell, resources, index)
            if self.add_missing_cells:
                nb, resources = self.add_missing_grade_cells(nb, resources)
                nb, resources = self.add_missing_task_cells(nb, resources)
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        meta = cell.metadata.get("nbgrader")
        if meta is not None and "grade_id" not in meta:
            del cell.metadata["nbgrader"]
        return cell, resources
