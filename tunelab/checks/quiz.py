"""Checks of the graded ``quiz``: the answer format, one definition for notebook and grader.

Whether an answer is *right* is decided by the grader (``solutions/quiz/checker.py``); here
is only what the notebook may know: which letters each question offers.
"""

from __future__ import annotations

from typing import Any

from tunelab.checks import wire
from tunelab.i18n import tr

QUESTIONS = tuple(f"q{i}" for i in range(1, 15))
OPTIONS = {qid: "abcd" for qid in QUESTIONS}


#: Cyrillic letters that look exactly like an offered Latin letter, read as that letter (a
#: Russian keyboard types them without the student noticing). Letters that look like one Latin
#: letter but stand for another in Russian numbering (в: "b"-like, yet the third letter) are
#: *not* guessed: the message names them plainly instead.
LOOKALIKES = {"а": "a", "с": "c"}
#: Wrapping a student may add around a letter ("(b)", "b)", "b.") and that changes nothing.
_WRAPPING = "()[].,;:'\" \t\r\n"


def _char_name(char: str, lang: str | None) -> str:
    """A character named so that it never looks like a different letter in the message."""
    import unicodedata

    if char.isascii() and char.isprintable():
        return repr(char)
    name = unicodedata.name(char, f"U+{ord(char):04X}").lower()
    if "cyrillic" in name:
        word = name.split()[-1]
        return tr(
            "the Cyrillic letter {word} ({char!r}, U+{code:04X})",
            "кириллическую букву «{char}» (U+{code:04X})",
            lang,
            word=word,
            char=char,
            code=ord(char),
        )
    return tr(
        "{name} (U+{code:04X})", "символ {name} (U+{code:04X})", lang, name=name, code=ord(char)
    )


def read_letter(qid: str, value: Any, lang: str | None = None) -> tuple[str | None, str | None]:
    """``(letter, None)`` for a readable answer, else ``(None, why not)`` (in ``lang``).

    The one format rule for the notebook's check cells and the grader: exactly one of the
    letters the question offers, in any case, optionally wrapped ("(b)", "b."); a Cyrillic
    letter that looks exactly like an offered one (а, с) counts as it. Anything else fails
    this question only, with a message that names what was typed.
    """
    import unicodedata

    offered = OPTIONS[qid]
    letters = ", ".join(offered)
    if value is None:
        return None, tr(
            'There is no answer for {qid} yet: write answers[{qid!r}] = "<letter>" in the '
            "answer cell above and run it.",
            'Ответа на {qid} пока нет: напишите answers[{qid!r}] = "<буква>" в ячейке ответа '
            "выше и выполните её.",
            lang,
            qid=qid,
        )
    if type(value) is not str:
        return None, tr(
            "answers[{qid!r}] is {got}, but it should be one letter out of {letters} "
            '(a string, e.g. "a").',
            "answers[{qid!r}] — это {got}, а должна быть одна буква из {letters} "
            '(строка, например "a").',
            lang,
            qid=qid,
            got=wire.describe(value, lang),
            letters=letters,
        )
    typed = unicodedata.normalize("NFKC", value).strip(_WRAPPING)
    core = "".join(LOOKALIKES.get(c, c) for c in typed.casefold())
    if len(core) == 1 and core in offered:
        return core, None
    if not core:
        return None, tr(
            "answers[{qid!r}] is an empty string: write one letter out of {letters}.",
            "answers[{qid!r}] — пустая строка: напишите одну букву из {letters}.",
            lang,
            qid=qid,
            letters=letters,
        )
    chosen = [c for c in core if c in offered]
    if len(core) <= 12 and len(chosen) > 1 and all(c in offered or c in " ,;/&+" for c in core):
        return None, tr(
            "answers[{qid!r}] is {got}: that names {n} letters, but each question has exactly "
            "one best answer. Keep one letter out of {letters}.",
            "answers[{qid!r}] — это {got}: здесь несколько букв ({n}), а у каждого вопроса ровно один "
            "лучший ответ. Оставьте одну букву из {letters}.",
            lang,
            qid=qid,
            got=repr(value.strip()),
            n=len(chosen),
            letters=letters,
        )
    strange = [c for c in dict.fromkeys(typed) if not (c.isascii() and c.isprintable())]
    strange = [c for c in strange if LOOKALIKES.get(c.casefold()) is None]
    if strange and len(core) <= 12:
        named = ", ".join(_char_name(c, lang) for c in strange[:3])
        return None, tr(
            "answers[{qid!r}] contains {named}, not a Latin letter. Switch the keyboard to "
            "English and type one letter out of {letters}.",
            "answers[{qid!r}] содержит {named}, а не латинскую букву. Переключите раскладку "
            "на английскую и напишите одну букву из {letters}.",
            lang,
            qid=qid,
            named=named,
            letters=letters,
        )
    return None, tr(
        "answers[{qid!r}] is {got}, but it should be one letter out of {letters} "
        '(a string, e.g. "a").',
        "answers[{qid!r}] — это {got}, а должна быть одна буква из {letters} "
        '(строка, например "a").',
        lang,
        qid=qid,
        got=wire.describe(value, lang),
        letters=letters,
    )


def format_problem(qid: str, value: Any, lang: str | None = None) -> str | None:
    """Why a decoded answer is not one of the question's letters, or None (in ``lang``)."""
    return read_letter(qid, value, lang)[1]


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
    choice, problem = read_letter(qid, value)
    if problem:
        raise AssertionError(problem)
    print(
        tr(
            "{qid}: answer {answer!r} recorded; it is graded after you submit.",
            "{qid}: ответ {answer!r} записан; он будет оценён после сдачи.",
            qid=qid,
            answer=choice,
        )
    )
