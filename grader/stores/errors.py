"""The one error every step of the grader raises for the instructor to act on.

Why a module of its own: the course, the gradebook and every pipeline step raise it, so it
sits below all of them (it used to live in ``course.py``, which made ``course`` and
``gradebook`` import each other).
"""


class CourseError(Exception):
    """A problem with the course layout that the instructor has to fix (message says how)."""
