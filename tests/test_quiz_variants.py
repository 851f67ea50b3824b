"""The quiz's answer format, per-student variants and what copying letters is worth.

Why: a student who has read every shipped file must not score more than their honest core:
a malformed answer fails its own question only, a lookalike letter counts as the letter it
looks like, an always-equal object or a dict that answers by call order earns nothing extra,
and letters copied from a classmate on another variant score like guesses. Each case is
judged by the real checker, in both editions.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from forgeries import Always

from grader.trusted import Context, load_checker
from tunelab.checks import quiz as Q
from tunelab.checks import quiz_texts, quiz_variants, wire

ROOT = Path(__file__).resolve().parents[1]
load_checker(ROOT, "quiz")
CHECKER = sys.modules["_grader_checker_quiz"]
LANGS = ("en", "ru")


def verdicts(student: str, answers, lang: str = "en") -> dict[str, bool]:
    """Every question judged as at grading: one probe per check cell, in notebook order."""
    checker = load_checker(ROOT, "quiz")
    ns = {"answers": answers}

    def probe(module: str, part: str, payload) -> object:
        result = Q.PROBES[part](ns, json.loads(json.dumps(payload)))
        return wire.decode_text(wire.dumps(result))

    out = {}
    for qid in Q.QUESTIONS:
        gid = f"{qid}-check"
        ctx = Context(gid, 1, probe, checker.module, ROOT, lang=lang, student=student)
        out[qid] = checker.judge(gid, ctx).passed
    return out


def right(student: str) -> dict[str, str]:
    return {q: CHECKER.correct_letter(student, q) for q in Q.QUESTIONS}


def wrong_letter(student: str, qid: str) -> str:
    return next(x for x in "abcd" if x != CHECKER.correct_letter(student, qid))


# -- the format: one shared validator -------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_several_letters_fail_that_question_only(lang: str) -> None:
    honest = right("ann")
    honest["q3"] = "ab"
    honest["q7"] = "a, b"
    got = verdicts("ann", honest, lang)
    assert not got["q3"] and not got["q7"]
    assert sum(got.values()) == 12  # the honest core: every other question
    letter, problem = Q.read_letter("q3", "ab", lang)
    assert letter is None and "ab" in problem


@pytest.mark.parametrize("lang", LANGS)
def test_cyrillic_lookalikes_count_as_their_latin_twins(lang: str) -> None:
    to_cyrillic = {"a": "а", "c": "С"}
    student = next(s for s in (f"u{i}" for i in range(200)) if "a" in right(s).values())
    answers = {q: to_cyrillic.get(x, x) for q, x in right(student).items()}
    assert any(v in ("а", "С") for v in answers.values())
    assert all(verdicts(student, answers, lang).values())


@pytest.mark.parametrize("lang", LANGS)
def test_other_cyrillic_letters_are_named_plainly(lang: str) -> None:
    for typed in ("в", "В", "б", "г"):
        letter, problem = Q.read_letter("q1", typed, lang)
        assert letter is None
        assert f"U+{ord(typed):04X}" in problem
        assert ("Cyrillic" in problem) if lang == "en" else ("кириллическую" in problem)
    # the message never shows a lookalike as if it were another letter
    _, problem = Q.read_letter("q1", "В", "en")
    assert "'В', U+0412" in problem


def test_the_visible_check_and_the_grader_agree_on_every_format() -> None:
    cases = ["b", " B ", "(c)", "d.", "ab", "а", "в", "", "x", 3, None, ["a"], "ａ", "bé"]
    for value in cases:
        decoded = wire.decode_text(wire.dumps(Q.probe_answers({"answers": {"q2": value}}, {})))
        visible_ok = True
        try:
            Q.check_format({"q2": value}, "q2")
        except AssertionError:
            visible_ok = False
        graded_letter, _ = Q.read_letter("q2", decoded.get("q2"))
        assert visible_ok == (graded_letter is not None), value


# -- forged answers ----------------------------------------------------------------------------
class ByCallCount(dict):
    """A dict that answers each read with the next letter: answering by call order/count."""

    def __init__(self, letters: str) -> None:
        super().__init__({q: "a" for q in Q.QUESTIONS})
        self.calls = 0
        self.letters = letters

    def get(self, key, default=None):
        self.calls += 1
        return self.letters[self.calls % len(self.letters)]


@pytest.mark.parametrize("lang", LANGS)
def test_always_equal_answers_score_only_their_letter(lang: str) -> None:
    honest = verdicts("ann", {q: "a" for q in Q.QUESTIONS}, lang)
    forged = verdicts("ann", {q: Always("a") for q in Q.QUESTIONS}, lang)
    assert forged == honest and sum(forged.values()) < 14


@pytest.mark.parametrize("lang", LANGS)
def test_answers_by_call_order_score_what_they_said(lang: str) -> None:
    """Whatever a dict answers per probe, the grade is that of the letters it gave."""
    forged = ByCallCount("abcd")
    got = verdicts("ann", forged, lang)
    # probe k (one per check cell) reads the 14 questions in order: q_k is read at call 15k+1
    core = {
        q: CHECKER.correct_letter("ann", q)
        == forged.letters[(14 * Q.QUESTIONS.index(q) + Q.QUESTIONS.index(q) + 1) % 4]
        for q in Q.QUESTIONS
    }
    assert got == core
    assert sum(got.values()) <= 7


# -- variants ----------------------------------------------------------------------------------
def test_variants_are_deterministic_and_differ_per_student() -> None:
    ids = [f"student{i}" for i in range(200)]
    assert Q.permutation("Ann ", "q1") == Q.permutation("ann", "q1")  # case and spaces
    orders = {Q.permutation(s, "q1") for s in ids}
    assert len(orders) == 24  # every order of four options occurs
    codes = {Q.variant_code(s) for s in ids}
    assert len(codes) == len(ids)
    rows10 = {json.dumps(Q.variant_row(s, "q10")) for s in ids}
    rows11 = {json.dumps(Q.variant_row(s, "q11")) for s in ids}
    assert len(rows10) > 20 and len(rows11) > 20
    keys = [tuple(right(s).values()) for s in ids]
    assert len(set(keys)) == len(ids), "two students share a whole key"


def test_the_right_option_has_no_fixed_place() -> None:
    """No position or size exploit: the right value is not always the smallest, the largest..."""
    q10 = {
        row["epochs"].index(CHECKER.plateau_epoch(row["losses"]))
        for row in quiz_variants.VARIANTS["q10"]
    }
    q11 = {
        row["values"].index(row["tokens"] * row["epochs"]) for row in quiz_variants.VARIANTS["q11"]
    }
    assert q10 == {0, 1} and len(q11) >= 3
    letters = [CHECKER.correct_letter(f"s{i}", "q5") for i in range(400)]
    assert {x: letters.count(x) for x in "abcd"} == pytest.approx(
        dict.fromkeys("abcd", 100), abs=35
    )


def test_the_shipped_table_is_the_checkers_and_holds_no_key() -> None:
    assert CHECKER.build_variants() == quiz_variants.VARIANTS
    for row in quiz_variants.VARIANTS["q10"]:
        assert set(row) == {"losses", "epochs"}
    for row in quiz_variants.VARIANTS["q11"]:
        assert set(row) == {"tokens", "epochs", "batch", "values"}
        assert row["values"] == sorted(row["values"])
    shipped = "".join(Path(m.__file__).read_text() for m in (Q, quiz_texts, quiz_variants))
    for word in ("KEY", "plateau_epoch", "correct_index", "WHY_WRONG", "CORRECT"):
        assert word not in shipped, word


def test_each_q10_row_follows_lesson_5s_rule_with_a_margin() -> None:
    for row in quiz_variants.VARIANTS["q10"]:
        losses = row["losses"]
        gains = [round(a - b, 6) for a, b in zip(losses, losses[1:], strict=False)]
        p = CHECKER.plateau_epoch(losses)
        assert p in row["epochs"] and all(g >= 0.02 for g in gains[: p - 1])
        assert all(0 <= g <= 0.008 for g in gains[p - 1 :])


@pytest.mark.parametrize("lang", LANGS)
def test_the_notebook_shows_the_graded_variant(lang: str, monkeypatch) -> None:
    from tunelab import i18n

    monkeypatch.setattr(i18n, "_chosen", lang)
    monkeypatch.delenv(Q.HUB_ENV, raising=False)
    monkeypatch.delenv(Q.STUDENT_ENV, raising=False)
    with pytest.raises(Q.NoStudentId):
        Q.Quiz("").require()
    assert Q.Quiz("  ann ").student == "ann"
    monkeypatch.setenv(Q.HUB_ENV, "bob")
    quiz = Q.Quiz("ann")
    assert quiz.student == "bob" and quiz.ignored_typed
    monkeypatch.setenv(Q.STUDENT_ENV, "carol")  # the grader's collected id wins
    quiz = Q.Quiz("ann")
    assert quiz.student == "carol"
    text = quiz.markdown("q10")
    losses = Q.variant_row("carol", "q10")["losses"]
    shown = f"{losses[1]:.3f}"
    assert (shown.replace(".", ",") if lang == "ru" else shown) in text
    for letter, option in Q.displayed("carol", "q3", lang)[1]:
        assert f"**({letter})** {option}" in quiz.markdown("q3")
    assert quiz.letter("q3", 0) in "abcd"


# -- copied letters ----------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_letters_copied_from_a_classmate_score_like_guesses(lang: str) -> None:
    ann = right("ann")
    assert all(verdicts("ann", ann, lang).values())
    bob = verdicts("bob", ann, lang)  # bob pasted ann's letters
    same = sum(CHECKER.correct_letter("bob", q) == ann[q] for q in Q.QUESTIONS)
    assert sum(bob.values()) == same < 14


def test_copying_pays_like_guessing_over_a_class() -> None:
    rng = random.Random(7)
    copied, guessed = [], []
    for i in range(300):
        source, copier = f"src{i}", f"cop{i}"
        letters = right(source)
        copied.append(sum(CHECKER.correct_letter(copier, q) == letters[q] for q in letters))
        guess = {q: rng.choice("abcd") for q in Q.QUESTIONS}
        guessed.append(sum(CHECKER.correct_letter(copier, q) == guess[q] for q in guess))
    mean_copied, mean_guessed = sum(copied) / 300, sum(guessed) / 300
    print(f"copied letters: {mean_copied:.2f}/14, random letters: {mean_guessed:.2f}/14")
    assert abs(mean_copied - 3.5) < 0.5 and abs(mean_copied - mean_guessed) < 0.6
