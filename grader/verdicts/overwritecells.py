"""nbgrader's OverwriteCells step, safe for cells that lost their grade id.

nbgrader 0.9.6 strips the grade id of a duplicated cell (``DeduplicateIds``) or of a cell
whose id the gradebook does not know, but then, with ``add_missing_cells`` on, indexes
``metadata["nbgrader"]["grade_id"]`` of every cell that still has nbgrader metadata and
fails the whole submission with ``KeyError: 'grade_id'``. Such a cell is, after those
steps, an ordinary cell: this step says so by dropping its leftover nbgrader metadata.
"""

from __future__ import annotations

from nbgrader.preprocessors import OverwriteCells as NbgraderOverwriteCells


class OverwriteCells(NbgraderOverwriteCells):
    """Restore graded and read-only cells from the gradebook (nbgrader's step, hardened)."""

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        meta = cell.metadata.get("nbgrader")
        if meta is not None and "grade_id" not in meta:
            del cell.metadata["nbgrader"]
        return cell, resources
