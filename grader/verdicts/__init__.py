"""What decides a grade, in the trusted grader process, never in the student's kernel.

``trusted.py`` (checkers, probes, verdicts), ``checks.py`` (missing, empty or corrupted
notebooks), the grader's own nbgrader steps (``sandboxedexecute.py``, ``saveverdicts.py``,
``overwritecells.py``, ``checkcellmetadata.py``; ``resources.py`` is what they share) and
``preflight.py`` (the master must earn full marks first).
"""
