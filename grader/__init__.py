"""Instructor tools for Fine-Tuning Lab: ``python -m grader --help``.

A thin layer over nbgrader: the masters in ``solutions/`` are released with nbgrader's own
converters, and submissions are autograded by nbgrader's ``Autograde`` converter whose
``Execute`` step is swapped (by configuration) for :class:`grader.preprocessors.SandboxedExecute`,
which runs each student's kernel inside a bubblewrap sandbox. This module stays import-light:
the sandbox imports ``grader.kernel_guard`` inside every student kernel.
"""
