"""generateContent behaviour: memorised training answers, quality-driven held-out answers."""

from __future__ import annotations

import re
import warnings

import pytest

from tunelab.emulator import generation
from tunelab.emulator.generation import GENERIC_ANSWER, answer, count_tokens

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai


class AddDomain:
    """A tiny stand-in domain: "add X and Y" -> the sum."""

    name = "add"
    baseline_quality = 0.25
    _re = re.compile(r"add (\d+) and (\d+)")

    def recognises(self, prompt: str) -> bool:
        return self._re.fullmatch(" ".join(prompt.split())) is not None

    def reference(self, prompt: str) -> str | None:
        m = self._re.fullmatch(" ".join(prompt.split()))
        return None if m is None else str(int(m[1]) + int(m[2]))

    def degrade(self, answer: str, rng) -> str:
        return f"wrong:{answer}:{int(rng.integers(1000))}"


@pytest.fixture
def add_domain(monkeypatch) -> AddDomain:
    domain = AddDomain()

    def find(obj):
        if isinstance(obj, str):
            return domain if domain.recognises(obj) else None
        prompts = [e["text_input"] for e in obj]
        hits = sum(domain.recognises(p) for p in prompts)
        return domain if hits * 2 >= len(prompts) else None

    monkeypatch.setattr(generation, "_domain_of", find)
    return domain


PROMPTS = [f"add {i} and {2 * i + 1}" for i in range(600)]


def share_right(model: str, **kwargs) -> float:
    right = sum(answer(model, p, **kwargs) == AddDomain().reference(p) for p in PROMPTS)
    return right / len(PROMPTS)


def test_base_model_answers_with_baseline_quality(add_domain) -> None:
    assert share_right("models/gemini-1.5-flash-001-tuning") == pytest.approx(0.25, abs=0.06)


@pytest.mark.parametrize("quality", [0.0, 0.5, 0.9, 1.0])
def test_tuned_model_answers_with_its_quality(add_domain, quality) -> None:
    got = share_right("tunedModels/t", quality=quality, trained_domain="add")
    assert got == pytest.approx(quality, abs=0.06)


def test_quality_only_applies_to_the_trained_domain(add_domain) -> None:
    got = share_right("tunedModels/t", quality=1.0, trained_domain="nl_sql")
    assert got == pytest.approx(0.25, abs=0.06)


def test_answers_are_deterministic_per_model_and_prompt(add_domain) -> None:
    a = [answer("tunedModels/a", p, quality=0.5, trained_domain="add") for p in PROMPTS[:50]]
    again = [answer("tunedModels/a", p, quality=0.5, trained_domain="add") for p in PROMPTS[:50]]
    other = [answer("tunedModels/b", p, quality=0.5, trained_domain="add") for p in PROMPTS[:50]]
    assert a == again
    assert a != other
    wrong = [x for x in a if x.startswith("wrong:")]
    assert wrong and all(x.startswith("wrong:") for x in wrong)


def test_memorised_training_prompts_win(add_domain) -> None:
    memory = {"add 1 and 2": "three (memorised)"}
    assert answer("tunedModels/t", "add  1 and 2", quality=0.0, memory=memory) == (
        "three (memorised)"
    )


def test_prompts_outside_every_domain_get_the_generic_answer(add_domain) -> None:
    assert answer("tunedModels/t", "Write me a poem", quality=1.0) == GENERIC_ANSWER
    assert "simulated" in GENERIC_ANSWER


def test_generic_answer_without_any_domain(monkeypatch) -> None:
    monkeypatch.setattr(generation, "_domain_of", lambda obj: None)
    assert answer("models/x", "add 1 and 2") == GENERIC_ANSWER


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("tokenization", 2),
        ("SELECT name FROM customers;", 6),
        ("a  b\n c", 3),
    ],
)
def test_token_count_approximation(text, tokens) -> None:
    assert count_tokens(text) == tokens


# --- the real NL->SQL domain through the HTTP API -------------------------------------------
def test_overfit_model_writes_broken_sql_and_well_tuned_one_correct_sql(emulator) -> None:
    from tunelab.domains import nl_sql

    train, heldout = nl_sql.split_pairs(200, 40, seed=3)
    data = [{"text_input": p.question, "output": p.answer} for p in train]
    for model_id, epochs in (("sql-overfit", 20), ("sql-good", 8)):
        genai.create_tuned_model(
            source_model="models/gemini-1.5-flash-001-tuning",
            training_data=data,
            id=model_id,
            epoch_count=epochs,
            batch_size=4,
            learning_rate=0.001,
        ).result()

    def replies(model_id: str, pairs) -> list[str]:
        model = genai.GenerativeModel(f"tunedModels/{model_id}")
        return [model.generate_content(p.question).text for p in pairs]

    # Both reproduce training answers exactly (the overfit one "perfect on training queries").
    assert replies("sql-overfit", train[:10]) == [p.answer for p in train[:10]]
    assert replies("sql-good", train[:10]) == [p.answer for p in train[:10]]

    overfit = replies("sql-overfit", heldout)
    assert sum(not nl_sql.compiles(sql) for sql in overfit) >= 0.9 * len(heldout)
    good = replies("sql-good", heldout)
    right = sum(sql == p.answer for sql, p in zip(good, heldout, strict=True))
    assert right >= 0.6 * len(heldout)
    assert all(
        nl_sql.compiles(sql) for sql, p in zip(good, heldout, strict=True) if sql == p.answer
    )

    base = genai.GenerativeModel("models/gemini-1.5-flash-001-tuning")
    base_right = sum(base.generate_content(p.question).text == p.answer for p in heldout)
    assert base_right < right
