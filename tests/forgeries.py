"""Forged answers the quiz checks must not be fooled by, shared by the tests that try them.

Why one place: ``tests/test_quiz_variants.py`` and ``tests/test_grader_trusted.py`` attack the
quiz's verdicts with the same "always equal" string; one definition keeps both attacks as
strong as the stronger of them was.
"""

from __future__ import annotations


class Always(str):
    """A string that claims to equal everything and survives every normalisation a checker
    might apply (strip, lower, casefold): an answer that would match any letter."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def strip(self, *args):
        return self

    def lower(self):
        return self

    def casefold(self):
        return self

    __hash__ = str.__hash__
