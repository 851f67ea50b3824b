"""nbgrader configuration: this repository is the course directory.

Masters live in ``solutions/`` (nbgrader's source directory) and student copies in
``notebooks/`` (its release directory). Everything an instructor produces while grading
(gradebook, submissions, autograded copies, feedback, exports, reports) lives in the
git-ignored ``.instructor/`` folder, so it never lands in the repository.

``TUNELAB_INSTRUCTOR_ROOT`` moves that instructor folder elsewhere (the test suite and
``python -m grader --instructor-root`` use it so they never touch the real gradebook).
``TUNELAB_GRADEBOOK_URL`` (e.g. ``postgresql://grader:PASSWORD@db.example.org/course``) puts
the gradebook on a database server several graders share; unset, it is the SQLite file
``INSTRUCTOR/gradebook.db`` (one instructor).
The same file serves plain ``nbgrader`` commands and ``python -m grader``, so both grade
with exactly the same settings.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = Path(os.environ.get("TUNELAB_INSTRUCTOR_ROOT") or ROOT / ".instructor").resolve()
INSTRUCTOR.mkdir(parents=True, exist_ok=True)  # sqlite cannot create the gradebook's folder

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Absolute paths: nbgrader joins them onto the root unchanged, so they may live anywhere.
c.CourseDirectory.submitted_directory = str(INSTRUCTOR / "submitted")
c.CourseDirectory.autograded_directory = str(INSTRUCTOR / "autograded")
c.CourseDirectory.feedback_directory = str(INSTRUCTOR / "feedback")
c.CourseDirectory.db_url = (
    os.environ.get("TUNELAB_GRADEBOOK_URL") or f"sqlite:///{INSTRUCTOR / 'gradebook.db'}"
)
c.CourseDirectory.course_id = "fine-tuning-lab"

# Released copies: solutions replaced by a stub that raises, hidden tests removed.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\n"
    'raise NotImplementedError("replace this line with your answer, then run the check cell below")'
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Student copies are stored without outputs; lessons that need a figure draw it when run.
c.ClearOutput.enabled = True
c.Execute.timeout = 60

# Grading: a test cell a student deleted is put back from the gradebook (and scored),
# instead of silently vanishing from the grade.
c.OverwriteCells.add_missing_cells = True

# Each graded assignment's trusted checker (hidden inputs, reference answers) lives beside its
# master in solutions/ASSIGNMENT/checker.py, with any checker-side module it loads (e.g.
# solutions/sql_overfitting/curves.py, the hidden curves' labeller); no .py file of a master's
# folder may ever be copied into a release.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "checker.py",
    "*.py",
]
