"""Checks of the graded ``quiz``: the answer format, one definition for notebook and grader.

Whether an answer is *right* is decided by the grader (``solutions/quiz/checker.py``); here
is only what the notebook may know: which letters each question offers.
"""

from __future__ import annotations

from typing import Any

from tunelab.checks import wire

QUESTIONS = tuple(f"q{i}" for i in range(1, 15))
OPTIONS = {qid: "abcd" for qid in QUESTIONS}


def format_problem(qid: str, value: Any) -> str | None:
    """Why a decoded answer is not one of the question's letters, or None."""
    if value is None:
        return (
            f'There is no answer for {qid} yet: write answers[{qid!r}] = "<letter>" in the '
            "answer cell above and run it."
        )
    if type(value) is not str or value.strip().lower() not in OPTIONS[qid] or not value.strip():
        return (
            f"answers[{qid!r}] is {wire.describe(value)}, but it should be one letter out of "
            f'{", ".join(OPTIONS[qid])} (a string, e.g. "a").'
        )
    return None


def letter(value: str) -> str:
    return value.strip().lower()


def probe_answers(ns: dict, payload: dict) -> Any:
    """The student's ``answers`` dict (only the quiz's question ids)."""
    answers = ns.get("answers")
    if not isinstance(answers, dict):
        return wire.error(NameError("answers is not a dict (run the setup cell)"))
    return wire.encode({qid: answers.get(qid) for qid in QUESTIONS if qid in answers})


PROBES = {"answers": probe_answers}


def check_format(answers: dict, qid: str) -> None:
    """The visible check: the answer is readable (not whether it is right)."""
    decoded = wire.decode_text(wire.dumps(probe_answers({"answers": answers}, {})))
    value = decoded.get(qid) if isinstance(decoded, dict) else None
    problem = format_problem(qid, value)
    if problem:
        raise AssertionError(problem)
    print(f"{qid}: answer {letter(value)!r} recorded; it is graded after you submit.")
