"""Checks of the graded ``quiz``: the answer format and each student's variant.

Whether an answer is *right* is decided by the instructor's grader, outside the notebook; here
is only what the notebook may know: which letters each question offers, the option texts
(:mod:`tunelab.checks.quiz_texts`), and in which order and with which numbers *this* student
sees them.

Why variants: one answer string for a whole class is 14 letters in a group chat. Each student
gets the options in an order of their own, and questions 10 and 11 numbers of their own,
fixed by (student id, assignment) so JupyterLab, Validate and the grader agree. Nothing here
knows which option is right; a student's letters mean something only under their own
permutation, so letters copied from a classmate score like guesses.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from tunelab.checks import wire
from tunelab.checks.quiz_texts import OPTION_TEXTS, Q10, Q11
from tunelab.checks.quiz_variants import VARIANTS
from tunelab.i18n import get_language, tr

ASSIGNMENT = "quiz"
QUESTIONS = tuple(f"q{i}" for i in range(1, 15))
OPTIONS = {qid: "abcd" for qid in QUESTIONS}
#: Questions whose numbers differ per student (their rows are in ``quiz_variants.VARIANTS``).
COMPUTED = ("q10", "q11")
#: Set by the grader in the grading kernel: the id the submission was collected under.
STUDENT_ENV = "TUNELAB_STUDENT_ID"
#: Set by JupyterHub in every student's server.
HUB_ENV = "JUPYTERHUB_USER"


# -- variants ---------------------------------------------------------------------------------
def normalise_id(student: str) -> str:
    """The id as variants use it: case and surrounding spaces do not matter ("JDoe " = "jdoe")."""
    return " ".join(str(student).split()).casefold()


def _number(student: str, qid: str, what: str) -> int:
    text = f"{ASSIGNMENT}|{normalise_id(student)}|{qid}|{what}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def permutation(student: str, qid: str) -> tuple[int, ...]:
    """Displayed position -> canonical option index, for this student and question.

    A Fisher-Yates shuffle driven by SHA-256 (not ``random``), so every Python gives the same
    order for the same id.
    """
    order = list(range(len(OPTIONS[qid])))
    stream = _number(student, qid, "order")
    for i in range(len(order) - 1, 0, -1):
        stream, j = divmod(stream, i + 1)
        order[i], order[j] = order[j], order[i]
    return tuple(order)


def variant_row(student: str, qid: str) -> dict[str, Any]:
    """The numbers of a computed question for this student (a copy of its table row)."""
    rows = VARIANTS[qid]
    row = rows[_number(student, qid, "numbers") % len(rows)]
    return {k: list(v) if isinstance(v, list | tuple) else v for k, v in row.items()}


def variant_code(student: str) -> str:
    """A short name of the student's whole variant (for the instructor's export)."""
    text = "|".join(
        "".join(str(i) for i in permutation(student, q))
        + (f"#{_number(student, q, 'numbers') % len(VARIANTS[q])}" if q in VARIANTS else "")
        for q in QUESTIONS
    )
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _decimal(value: float, lang: str | None, places: int = 3) -> str:
    text = f"{value:.{places}f}"
    return text.replace(".", ",") if get_language(lang) == "ru" else text


def _whole(value: int, lang: str | None) -> str:
    text = f"{value:,}"
    return text.replace(",", " ") if get_language(lang) == "ru" else text


def canonical_texts(student: str, qid: str, lang: str | None = None) -> tuple[str | None, list]:
    """(stem or None, the four option texts in canonical order) as this student reads them."""
    code = "ru" if get_language(lang) == "ru" else "en"
    if qid == "q10":
        row = variant_row(student, qid)
        sep = "; " if code == "ru" else ", "
        stem = Q10[code]["stem"].format(losses=sep.join(_decimal(x, lang) for x in row["losses"]))
        low, high = row["epochs"]
        return stem, [t.format(low=low, high=high) for t in Q10[code]["options"]]
    if qid == "q11":
        row = variant_row(student, qid)
        stem = Q11[code].format(
            tokens=_whole(row["tokens"], lang), epochs=row["epochs"], batch=row["batch"]
        )
        return stem, [_whole(v, lang) for v in row["values"]]
    return None, list(OPTION_TEXTS[qid][code])


def displayed(student: str, qid: str, lang: str | None = None) -> tuple[str | None, list]:
    """(stem or None, [(letter, text), ...]) in the order this student sees the options."""
    stem, texts = canonical_texts(student, qid, lang)
    order = permutation(student, qid)
    return stem, [(OPTIONS[qid][pos], texts[canon]) for pos, canon in enumerate(order)]


def letter_for(student: str, qid: str, canonical: int) -> str:
    """The letter under which this student sees the option of canonical index ``canonical``."""
    return OPTIONS[qid][permutation(student, qid).index(canonical)]


def canonical_of(student: str, qid: str, letter: str) -> int:
    """The canonical index of the option this student sees under ``letter``."""
    return permutation(student, qid)[OPTIONS[qid].index(letter)]


def resolve_student(typed: Any = "") -> tuple[str | None, str]:
    """(student id, where it came from): the grader's, JupyterHub's, or the one typed.

    The grader always sets :data:`STUDENT_ENV` to the id the submission was collected under,
    so at grading the student's own variant is shown whatever was typed.
    """
    if STUDENT_ENV in os.environ:
        return os.environ[STUDENT_ENV], "grader"
    hub = os.environ.get(HUB_ENV, "").strip()
    if hub:
        return hub, "hub"
    if isinstance(typed, str) and typed.strip():
        return typed.strip(), "typed"
    return None, "none"


class NoStudentId(RuntimeError):
    """The notebook does not know whose variant to show (no JupyterHub, no id typed)."""


def _no_id() -> NoStudentId:
    return NoStudentId(
        tr(
            "This quiz does not know who you are yet (you are not on the course's JupyterHub). "
            'Write your course login in the cell above, e.g. STUDENT_ID = "jdoe" (the id your '
            "notebook is submitted under), run it, then run this cell again. The order of the "
            "options and the numbers in two questions depend on it.",
            "Тест пока не знает, кто вы (вы работаете не в JupyterHub курса). Напишите свой "
            'логин курса в ячейке выше, например STUDENT_ID = "jdoe" (тот, под которым вы '
            "сдаёте работу), выполните её, а затем снова эту ячейку. От него зависят порядок "
            "вариантов ответа и числа в двух вопросах.",
        )
    )


class Quiz:
    """This student's quiz in the notebook: draws each question's options in their order."""

    def __init__(self, typed_id: Any = "") -> None:
        self.student, self.source = resolve_student(typed_id)
        typed = typed_id.strip() if isinstance(typed_id, str) else ""
        self.ignored_typed = bool(
            typed and self.student and normalise_id(typed) != normalise_id(self.student)
        )

    def require(self) -> str:
        if self.student is None:
            raise _no_id()
        return self.student

    def greeting(self) -> str:
        student = self.require()
        text = tr(
            "Quiz variant of {who} ({code}).",
            "Вариант теста для {who} ({code}).",
            who=student,
            code=variant_code(student),
        )
        if self.ignored_typed:
            text += " " + tr(
                "(STUDENT_ID is ignored: {where} says you are {who}.)",
                "(STUDENT_ID не используется: {where} сообщает, что вы — {who}.)",
                where="JupyterHub" if self.source == "hub" else "the grader",
                who=student,
            )
        return text

    def markdown(self, qid: str) -> str:
        stem, options = displayed(self.require(), qid)
        lines = [stem, ""] if stem else []
        lines += [f"- **({letter})** {text}" for letter, text in options]
        lines += [
            "",
            tr(
                'Write the letter of your choice in the cell below, e.g. `answers["{qid}"] = "x"`.',
                "Напишите букву выбранного ответа в ячейке ниже, например "
                '`answers["{qid}"] = "x"`.',
                qid=qid,
            ),
        ]
        return "\n".join(lines)

    def show(self, qid: str) -> None:
        """Display the question's options (and stem, for questions with numbers)."""
        from IPython.display import Markdown, display

        display(Markdown(self.markdown(qid)))

    def numbers(self, qid: str) -> dict[str, Any]:
        """The numbers of question 10 or 11 as this student sees them."""
        return variant_row(self.require(), qid)

    def letter(self, qid: str, canonical: int) -> str:
        """The letter this student sees for the option of canonical index ``canonical``."""
        return letter_for(self.require(), qid, canonical)

    def letter_of_value(self, qid: str, value: Any) -> str:
        """The letter of the numeric option equal to ``value`` (questions 10 and 11)."""
        row = self.numbers(qid)
        values = row["epochs"] if qid == "q10" else row["values"]
        return self.letter(qid, values.index(value))


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


def _not_one_letter(qid: str, value: Any, letters: str, lang: str | None) -> tuple[None, str]:
    """The catch-all format message (wrong type, or text that is no letter), said once so the
    type check and the last resort of :func:`read_letter` cannot drift apart."""
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
        return _not_one_letter(qid, value, letters, lang)
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
            "answers[{qid!r}] — это {got}: здесь несколько букв ({n}), а у каждого вопроса "
            "ровно один лучший ответ. Оставьте одну букву из {letters}.",
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
    return _not_one_letter(qid, value, letters, lang)


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
