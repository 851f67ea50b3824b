"""nbgrader's SaveAutoGrades, scoring test cells by the trusted verdict instead of their outputs.

nbgrader gives a test cell 0 for any stderr output, full marks for a first output that is
not a number, and partial credit for a numeric result: all things a student's code can
print. Here a code test cell's score is exactly what :class:`grader.verdicts.trusted.Verdict` says
(all points when passed, 0 when not); manually graded cells keep nbgrader's rules.
"""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import SaveAutoGrades


class MissingVerdict(RuntimeError):
    """A test cell has no trusted verdict: the grading machine failed, not the student."""


class SaveVerdicts(SaveAutoGrades):
    """Record each test cell's trusted verdict in the gradebook."""

    def _add_score(self, cell: NotebookNode, resources: dict) -> None:
        meta = cell.metadata["nbgrader"]
        if cell.cell_type != "code" or utils.is_solution(cell):
            return super()._add_score(cell, resources)
        verdicts = resources.get("grader", {}).get("verdicts")
        if verdicts is None:
            return super()._add_score(cell, resources)  # no checker configured (legacy)
        verdict = verdicts.get(meta["grade_id"])
        if verdict is None:
            raise MissingVerdict(f"test cell {meta['grade_id']} has no trusted verdict")
        grade = self.gradebook.find_grade(
            meta["grade_id"], self.notebook_id, self.assignment_id, self.student_id
        )
        grade.auto_score = float(meta["points"]) if verdict.passed else 0.0
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
