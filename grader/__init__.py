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
top ``cli.py`` and ``demo.py``. Package files import nothing but ``sys``, so this stays
import-light. (The sandbox's own files run inside students' kernels and the zygote by their
paths, never through this package, so nothing here reaches a kernel.)
"""

import sys

# Grader processes read notebooks with nbformat, which imports jsonschema, which imports
# rfc3987_syntax when it is installed (jupyter-events pulls it in) only to check the "iri"
# string format, which no notebook schema uses. That import builds a lark grammar: 1.4-2.2 s
# of CPU in every grader process (python-jsonschema/jsonschema#1428). Marked absent here,
# jsonschema leaves out that one format checker.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
