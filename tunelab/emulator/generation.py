"""How the emulator's models answer ``generateContent`` and count tokens -- a SIMULATION.

No language model runs here. Answers are chosen so that a student sees the *consequences* of
their tuning choices:

* A tuned model asked a prompt from its training set returns the memorised training output
  (fine-tuned models reproduce their training data, overfit ones perfectly).
* For any other prompt of a known task domain (:mod:`tunelab.domains`: NL->SQL, tech support)
  the model is right with probability equal to its simulated held-out quality
  (``SimulatedRun.final_quality`` of its tuning job). Right = the domain's reference answer;
  wrong = ``domain.degrade(...)`` (for SQL: syntactic garbage). Base models use the domain's
  ``baseline_quality``. Whether a given prompt is answered right is decided by a SHA-256 hash
  of model name + prompt, so the same question always gets the same answer and a model with
  quality 0.8 gets ~80% of a large held-out set right.
* Prompts outside every domain get a polite, fixed explanation.

Token counts are a deterministic approximation of Gemini's tokenizer (documented in
:func:`count_tokens`), good enough for the course's "cost = dataset tokens x epochs" sums.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from tunelab.emulator import errors as E

_PIECE = re.compile(r"\w+|[^\w\s]")

GENERIC_ANSWER = (
    "I am a simulated model running in the Fine-Tuning Lab emulator, not a real language model. "
    "I can answer prompts from the course's task domains (natural-language questions about the "
    "shop database, answered with SQL, and customer tech-support questions); this prompt is "
    "outside them, so I have no answer for it."
)


def normalise_prompt(text: str) -> str:
    """Whitespace-insensitive form of a prompt: the key of a tuned model's training memory
    and of its answer draw, so "Hi  there" and "Hi there" get the same reply."""
    return " ".join(text.split())


def count_tokens(text: str) -> int:
    """Approximate Gemini token count: every punctuation mark is one token, every run of
    letters/digits costs one token per started 6 characters ("tokenization" -> 2).

    English text comes out near the usual ~4 characters per token; the point is a stable,
    explainable number, not the exact SentencePiece count.
    """
    total = 0
    for piece in _PIECE.findall(text):
        total += math.ceil(len(piece) / 6) if piece[0].isalnum() or piece[0] == "_" else 1
    return total


def contents_text(contents: Any, *, where: str = "contents") -> str:
    """The prompt text of a ``contents`` list: the text parts of the last user turn."""
    if isinstance(contents, Mapping):
        contents = [contents]
    if not contents:
        raise E.InvalidArgument(f"* GenerateContentRequest.{where}: contents is not specified")
    if not isinstance(contents, list):
        raise E.InvalidArgument(
            f"Invalid JSON payload received. Invalid value at '{where}' (repeated Content)"
        )
    last = None
    for item in contents:
        if isinstance(item, Mapping) and item.get("role", "user") in ("user", ""):
            last = item
    if last is None:
        last = contents[-1] if isinstance(contents[-1], Mapping) else {}
    texts = [p.get("text", "") for p in last.get("parts") or [] if isinstance(p, Mapping)]
    text = "".join(t for t in texts if isinstance(t, str))
    if not text.strip():
        raise E.InvalidArgument(
            f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        )
    return text


def all_text(obj: Any) -> str:
    """Every ``text`` value anywhere in a request fragment (for counting tokens)."""
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, Mapping):
            for k, v in x.items():
                if k == "text" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(obj)
    return "\n".join(out)


def _domain_of(obj: Any) -> Any:
    """``tunelab.domains.find_domain`` (None if the domains package is unavailable)."""
    try:
        from tunelab import domains
    except ImportError:  # pragma: no cover - the package ships with the course
        return None
    return domains.find_domain(obj)


def _draw(model_name: str, prompt: str) -> tuple[float, int]:
    """A uniform number in [0, 1) and an RNG seed, both fixed by (model, prompt)."""
    digest = hashlib.sha256(f"{model_name}\n{normalise_prompt(prompt)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return u, int.from_bytes(digest[8:16], "big")


def answer(
    model_name: str,
    prompt: str,
    *,
    quality: float | None = None,
    memory: Mapping[str, str] | None = None,
    trained_domain: str | None = None,
) -> str:
    """The simulated model's reply to one prompt.

    ``memory`` maps training prompts (:func:`normalise_prompt`) to outputs; ``quality`` is the
    tuned model's held-out quality on ``trained_domain`` (None for a base model).
    """
    key = normalise_prompt(prompt)
    if memory and key in memory:
        return memory[key]
    domain = _domain_of(prompt)
    if domain is None:
        return GENERIC_ANSWER
    reference = domain.reference(prompt)
    if reference is None:
        return GENERIC_ANSWER
    q = domain.baseline_quality
    if quality is not None and trained_domain == domain.name:
        q = quality
    u, seed = _draw(model_name, prompt)
    if u < q:
        return reference
    import numpy as np

    return domain.degrade(reference, np.random.default_rng(seed))


def trained_domain(examples: list[list[str]]) -> str | None:
    """Name of the domain a training set belongs to (None if none fits).

    Remembered per training set: parsing 500 prompts takes about 70 ms, and the same set is
    tuned again and again (every rerun in a lesson, every plan the grader evaluates).
    """
    try:
        key = tuple((i, o) for i, o in examples)
        hash(key)
    except (TypeError, ValueError):  # not pairs of plain values: work it out each time
        return _trained_domain(examples)
    return _trained_domain_cached(key)


@functools.lru_cache(maxsize=32)
def _trained_domain_cached(examples: tuple[tuple[str, str], ...]) -> str | None:
    return _trained_domain(examples)


def _trained_domain(examples: Any) -> str | None:
    domain = _domain_of([{"text_input": i, "output": o} for i, o in examples])
    return None if domain is None else domain.name


def generate_response(text: str, prompt_tokens: int, model_version: str, max_tokens: Any) -> dict:
    """A GenerateContentResponse (proto3 JSON) carrying ``text``."""
    finish = "STOP"
    if max_tokens is not None:
        try:
            limit = int(max_tokens)
        except (TypeError, ValueError):
            raise E.InvalidArgument(
                "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "
                f"{max_tokens!r}"
            ) from None
        if limit > 0 and count_tokens(text) > limit:
            words = text.split(" ")
            while words and count_tokens(" ".join(words)) > limit:
                words.pop()
            text, finish = " ".join(words), "MAX_TOKENS"
    out_tokens = count_tokens(text)
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
        },
        "modelVersion": model_version,
    }
