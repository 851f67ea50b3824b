"""Instructor tools for Fine-Tuning Lab: ``python -m grader --help``.

A thin layer over nbgrader: the masters in ``solutions/`` are released with nbgrader's own
converters, and submissions are autograded by nbgrader's ``Autograde`` converter whose
``Execute`` step is swapped (by configuration) for
:class:`grader.verdicts.sandboxedexecute.SandboxedExecute`, which runs each student's kernel
inside a bubblewrap sandbox.

The rooms, in pipeline order (each imports only the rooms before it; see grader/README.md
and tests/test_grader_imports.py): ``stores`` (the course, the gradebook), ``sandbox``
(where student code runs), ``handout`` (what students get), ``verdicts`` (what decides a
grade), ``grading`` (collect, autograde), ``results`` (feedback, grades, reports), and on
top ``cli.py`` and ``demo.py``. Package files import nothing, so this stays import-light:
the sandbox's own files run inside every student kernel.
"""
