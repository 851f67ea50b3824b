"""nbgrader configuration: this repository is the course directory.

Masters live in ``solutions/`` (nbgrader's source directory) and student copies in
``notebooks/`` (its release directory). Everything an instructor produces while grading
(gradebook, submissions, autograded copies, feedback, exports, reports) lives in the
git-ignored ``.instructor/`` folder, so it never lands in the repository.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = ROOT / ".instructor"

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = ".instructor/submitted"
c.CourseDirectory.autograded_directory = ".instructor/autograded"
c.CourseDirectory.feedback_directory = ".instructor/feedback"
c.CourseDirectory.db_url = f"sqlite:///{INSTRUCTOR / 'gradebook.db'}"
c.CourseDirectory.course_id = "fine-tuning-lab"

# Released copies: solutions replaced by a stub that raises, hidden tests removed.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Student copies are stored without outputs; lessons that need a figure draw it when run.
c.ClearOutput.enabled = True
c.Execute.timeout = 60
