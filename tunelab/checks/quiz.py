"""Checks of the graded ``quiz``: the answer format, one definition for notebook and grader.

Whether an answer is *right* is decided by the instructor's grader, outside the notebook; here
is only what the notebook may know: which letters each question offers.
"""

from __future__ import annotations

from typing import Any

from tunelab.checks import wire
from tunelab.i18n import tr

QUESTIONS = tuple(f"q{i}" for i in range(1, 15))
OPTIONS = {qid: "abcd" for qid in QUESTIONS}


def format_problem(qid: str, value: Any, lang: str | None = None) -> str | None:
    """Why a decoded answer is not one of the question's letters, or None (in ``lang``)."""
    if value is None:
        return tr(
            'There is no answer for {qid} yet: write answers[{qid!r}] = "<letter>" in the '
            "answer cell above and run it.",
            'Ответа на {qid} пока нет: напишите answers[{qid!r}] = "<буква>" в ячейке ответа '
            "выше и выполните её.",
            lang,
            qid=qid,
        )
    if type(value) is not str or value.strip().lower() not in OPTIONS[qid] or not value.strip():
        return tr(
            "answers[{qid!r}] is {got}, but it should be one letter out of {letters} "
            '(a string, e.g. "a").',
            "answers[{qid!r}] — это {got}, а должна быть одна буква из {letters} "
            '(строка, например "a").',
            lang,
            qid=qid,
            got=wire.describe(value, lang),
            letters=", ".join(OPTIONS[qid]),
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
    print(
        tr(
            "{qid}: answer {answer!r} recorded; it is graded after you submit.",
            "{qid}: ответ {answer!r} записан; он будет оценён после сдачи.",
            qid=qid,
            answer=letter(value),
        )
    )
