"""What the autograde converter hands its steps in ``resources['grader']``.

Why a module of its own: the converter (grading/autograde.py), the preflight and the Dask
worker all build it, and the steps that read it (sandboxedexecute, saveverdicts) sit below
them; kept here, the preflight needs nothing from the converter above it.
"""

from __future__ import annotations


class Shared(dict):
    """Run-wide objects handed to the steps in ``resources['grader']``.

    nbconvert deep-copies resources before every step; these must stay the same objects
    (the events list the step appends to, the lock it releases), so copying returns self.
    """

    def __deepcopy__(self, memo: dict) -> Shared:
        return self
