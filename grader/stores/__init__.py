"""Where grading state lives: the course folders and settings, nbgrader's gradebook.

``course.py`` (a course directory, its instructor folder and nbgrader configuration),
``gradebook.py`` (SQLite or PostgreSQL), ``errors.py`` (``CourseError``) and ``logs.py``
(nbgrader's log, captured per submission). Imports nothing from the rooms above.
"""
