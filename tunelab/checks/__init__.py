"""Checks of the graded notebooks: one definition for the notebook and for the grader.

Each graded part has three pieces here: a *probe* (runs in the student's kernel: calls the
student's function on given inputs and encodes what comes back, :mod:`tunelab.checks.wire`),
a *judge* (compares decoded results with expected ones and words the hint), and the
*visible check* the notebook's check cell calls (the probe and the judge on the visible
examples). The grader runs the same probes on hidden inputs and the same judges on answers
that only it holds (the instructor's checker, never part of the student release).
Nothing in this package is an answer to a graded part.
"""
