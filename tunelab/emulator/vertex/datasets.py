"""Vertex AI supervised-tuning datasets: JSONL validation and ``tuningDataStats``.

Documented Vertex format (one JSON object per line)::

    {"systemInstruction": {"parts": [{"text": "..."}]},            # optional
     "contents": [{"role": "user",  "parts": [{"text": "..."}]},
                  {"role": "model", "parts": [{"text": "..."}]}]}

``contents`` alternates ``user`` and ``model`` turns and ends with the ``model`` turn the model
is trained to produce. Only text parts are emulated (``fileData``/``inlineData`` -- images,
audio, documents -- are refused with a clear message).

Emulator behaviour (not Google's wording): every problem is reported as
``gs://bucket/file.jsonl line N: contents[1].role: ...`` -- the file, the 1-based line and the
field -- and the first problem stops the check, as the real job would fail on it. A line in the
Gemini API's ``{"text_input": ..., "output": ...}`` format gets a hint explaining the
difference. Token counts use :func:`tunelab.emulator.generation.count_tokens` (an approximation
of Gemini's tokenizer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunelab.emulator import errors as E
from tunelab.emulator.generation import count_tokens
from tunelab.i18n import tr

#: Emulator's limits (Vertex documents its own per model; these keep the simulation sensible).
MIN_TRAINING_EXAMPLES = 16
MAX_VALIDATION_EXAMPLES = 5000
MAX_EXAMPLE_TOKENS = 131_072
_ROLES = ("user", "model")
_TOP_LEVEL = {"contents", "systemInstruction", "system_instruction"}


@dataclass
class Dataset:
    """A validated dataset: one ``[prompt, answer]`` pair per example plus statistics."""

    uri: str
    examples: list[list[str]]  # [last user turn, final model turn]
    input_tokens: list[int]  # per example: system instruction + user turns (+ earlier model)
    output_tokens: list[int]  # per example: the final model turn
    messages: list[int]  # per example: number of contents
    characters: int
    first_contents: list[Any] = field(default_factory=list)  # a few examples, as sent


def _where(uri: str, line: int, path: str) -> str:
    if path:
        return tr(
            "{uri} line {line}: {path}",
            "{uri}, строка {line}: {path}",
            uri=uri,
            line=line,
            path=path,
        )
    return tr("{uri} line {line}", "{uri}, строка {line}", uri=uri, line=line)


def _text_of(content: Any, uri: str, line: int, path: str) -> str:
    """The text of one Content object, validated."""
    if not isinstance(content, Mapping):
        raise E.InvalidArgument(
            tr(
                "{where}: expected an object with role and parts, got {got}",
                "{where}: ожидался объект с полями role и parts, а получено {got}",
                where=_where(uri, line, path),
                got=json.dumps(content)[:60],
            )
        )
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise E.InvalidArgument(
            tr(
                "{where}: a non-empty list is required",
                "{where}: нужен непустой список",
                where=_where(uri, line, path + ".parts"),
            )
        )
    texts = []
    for j, part in enumerate(parts):
        where = _where(uri, line, f"{path}.parts[{j}]")
        if not isinstance(part, Mapping):
            raise E.InvalidArgument(
                tr(
                    '{where}: expected an object such as {{"text": "..."}}',
                    '{where}: ожидался объект вида {{"text": "..."}}',
                    where=where,
                )
            )
        if "text" not in part:
            other = ", ".join(sorted(part)) or tr("nothing", "ничего")
            raise E.InvalidArgument(
                tr(
                    "{where}: only text parts are supported by the emulator (found {other}); "
                    "image, audio and document tuning are not emulated",
                    "{where}: эмулятор поддерживает только текстовые части (найдено: {other}); "
                    "дообучение на изображениях, аудио и документах он не моделирует",
                    where=where,
                    other=other,
                )
            )
        if not isinstance(part["text"], str):
            raise E.InvalidArgument(
                tr(
                    "{where}.text: must be a string",
                    "{where}.text: должно быть строкой",
                    where=where,
                )
            )
        texts.append(part["text"])
    text = "".join(texts)
    if not text.strip():
        raise E.InvalidArgument(
            tr("{where}: the text is empty", "{where}: текст пуст", where=_where(uri, line, path))
        )
    return text


def _example(obj: Any, uri: str, line: int) -> tuple[list[str], int, int, int, int]:
    if not isinstance(obj, Mapping):
        raise E.InvalidArgument(
            tr(
                "{where}: each line must be a JSON object with a contents list",
                "{where}: каждая строка должна быть JSON-объектом со списком contents",
                where=_where(uri, line, ""),
            )
        )
    if "contents" not in obj:
        if "text_input" in obj or "output" in obj or "textInput" in obj:
            raise E.InvalidArgument(
                tr(
                    "{where}: missing; this line uses the Gemini API's {gemini} format, but "
                    "Vertex AI expects {vertex}",
                    "{where}: поля нет; эта строка в формате Gemini API {gemini}, а Vertex AI "
                    "ожидает {vertex}",
                    where=_where(uri, line, "contents"),
                    gemini='{"text_input": ..., "output": ...}',
                    vertex='{"contents": [{"role": "user", "parts": [{"text": ...}]}, '
                    '{"role": "model", "parts": [{"text": ...}]}]}',
                )
            )
        raise E.InvalidArgument(
            tr(
                "{where}: the field is required",
                "{where}: это поле обязательно",
                where=_where(uri, line, "contents"),
            )
        )
    unknown = sorted(set(obj) - _TOP_LEVEL)
    if unknown:
        raise E.InvalidArgument(
            tr(
                "{where}: unknown field; a line may hold contents and systemInstruction",
                "{where}: неизвестное поле; в строке могут быть только contents и "
                "systemInstruction",
                where=_where(uri, line, unknown[0]),
            )
        )
    contents = obj["contents"]
    if not isinstance(contents, list) or len(contents) < 2:
        raise E.InvalidArgument(
            tr(
                "{where}: a list of at least two turns (user, then model) is required",
                "{where}: нужен список хотя бы из двух реплик (сначала user, затем model)",
                where=_where(uri, line, "contents"),
            )
        )
    system = obj.get("systemInstruction", obj.get("system_instruction"))
    sys_text = _text_of(system, uri, line, "systemInstruction") if system is not None else ""
    texts: list[str] = []
    for i, content in enumerate(contents):
        text = _text_of(content, uri, line, f"contents[{i}]")
        role = content.get("role")
        expected = _ROLES[i % 2]
        if role not in _ROLES:
            raise E.InvalidArgument(
                tr(
                    '{where}: {role} is not a valid role; use "user" or "model"',
                    '{where}: {role} — недопустимая роль; используйте "user" или "model"',
                    where=_where(uri, line, f"contents[{i}].role"),
                    role=json.dumps(role),
                )
            )
        if role != expected:
            raise E.InvalidArgument(
                tr(
                    "{where}: expected {expected!r}; turns must alternate user, model, user, "
                    "... starting with user",
                    "{where}: ожидалась роль {expected!r}; реплики должны чередоваться: user, "
                    "model, user, ..., начиная с user",
                    where=_where(uri, line, f"contents[{i}].role"),
                    expected=expected,
                )
            )
        texts.append(text)
    if len(texts) % 2:
        raise E.InvalidArgument(
            tr(
                '{where}: the last turn must be the model\'s answer (role "model")',
                '{where}: последней репликой должен быть ответ модели (role "model")',
                where=_where(uri, line, f"contents[{len(texts) - 1}]"),
            )
        )
    in_tokens = count_tokens(sys_text) + sum(count_tokens(t) for t in texts[:-1])
    out_tokens = count_tokens(texts[-1])
    if in_tokens + out_tokens > MAX_EXAMPLE_TOKENS:
        raise E.InvalidArgument(
            tr(
                "{where}: the example holds {n:,} tokens; the emulator's limit is {limit:,}",
                "{where}: токенов в примере: {n:,}, а предел эмулятора — {limit:,}",
                where=_where(uri, line, "contents"),
                n=in_tokens + out_tokens,
                limit=MAX_EXAMPLE_TOKENS,
            )
        )
    chars = len(sys_text) + sum(len(t) for t in texts)
    return [texts[-2], texts[-1]], in_tokens, out_tokens, len(texts), chars


def parse(data: bytes, uri: str, *, role: str) -> Dataset:
    """Validate a JSONL dataset (``role``: "training" or "validation")."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise E.InvalidArgument(
            tr(
                "{uri}: the file is not UTF-8 ({exc})",
                "{uri}: файл не в UTF-8 ({exc})",
                uri=uri,
                exc=exc,
            )
        ) from None
    ds = Dataset(uri, [], [], [], [], 0)
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise E.InvalidArgument(
                tr(
                    "{where}: not valid JSON ({exc}); JSONL needs one complete JSON object "
                    "per line",
                    "{where}: некорректный JSON ({exc}); в JSONL каждая строка — один целый "
                    "JSON-объект",
                    where=_where(uri, number, ""),
                    exc=exc,
                )
            ) from None
        pair, n_in, n_out, n_msg, chars = _example(obj, uri, number)
        ds.examples.append(pair)
        ds.input_tokens.append(n_in)
        ds.output_tokens.append(n_out)
        ds.messages.append(n_msg)
        ds.characters += chars
        if len(ds.first_contents) < 3:
            ds.first_contents.append(obj["contents"])
    n = len(ds.examples)
    if role == "training" and n < MIN_TRAINING_EXAMPLES:
        raise E.InvalidArgument(
            tr(
                "{uri}: {n} training examples; the emulator needs at least {least} (Vertex AI "
                "recommends starting with 100)",
                "{uri}: обучающих примеров: {n}, а эмулятору нужно не меньше {least} (Vertex AI "
                "советует начинать со 100)",
                uri=uri,
                n=n,
                least=MIN_TRAINING_EXAMPLES,
            )
        )
    if role == "validation" and n == 0:
        raise E.InvalidArgument(
            tr(
                "{uri}: the validation dataset holds no examples",
                "{uri}: в валидационном наборе нет ни одного примера",
                uri=uri,
            )
        )
    if role == "validation" and n > MAX_VALIDATION_EXAMPLES:
        raise E.InvalidArgument(
            tr(
                "{uri}: {n:,} validation examples; the emulator's limit is {limit:,}",
                "{uri}: примеров в валидационном наборе: {n:,}, а предел эмулятора — {limit:,}",
                uri=uri,
                n=n,
                limit=MAX_VALIDATION_EXAMPLES,
            )
        )
    return ds


def _percentile(sorted_values: Sequence[int], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def distribution(values: Sequence[int], *, billable: bool = True) -> dict[str, Any]:
    """A SupervisedTuningDatasetDistribution (proto3 JSON; int64 as strings)."""
    vals = sorted(int(v) for v in values)
    total = sum(vals)
    out: dict[str, Any] = {"sum": str(total)}
    if billable:
        out["billableSum"] = str(total)
    out.update(
        {
            "min": float(vals[0]),
            "max": float(vals[-1]),
            "mean": round(total / len(vals), 6),
            "median": _percentile(vals, 0.5),
            "p5": _percentile(vals, 0.05),
            "p95": _percentile(vals, 0.95),
        }
    )
    lo, hi = vals[0], vals[-1]
    n_buckets = min(10, max(1, hi - lo + 1))
    width = max(1.0, (hi - lo + 1) / n_buckets)
    counts = [0] * n_buckets
    for v in vals:
        counts[min(n_buckets - 1, int((v - lo) / width))] += 1
    out["buckets"] = [
        {"count": float(c), "left": lo + i * width, "right": lo + (i + 1) * width}
        for i, c in enumerate(counts)
        if c
    ]
    return out


def data_stats(ds: Dataset, tuning_steps: int) -> dict[str, Any]:
    """``tuningDataStats`` of a job (``supervisedTuningDataStats``), proto3 JSON.

    ``totalBillableTokenCount`` is the documented "number of billable tokens in the tuning
    dataset": the tokens of ONE pass over the training set. Vertex bills tuning per token per
    epoch, so a job costs ``totalBillableTokenCount x epochCount x price``.
    """
    tokens = sum(ds.input_tokens) + sum(ds.output_tokens)
    return {
        "supervisedTuningDataStats": {
            "tuningDatasetExampleCount": str(len(ds.examples)),
            "totalTuningCharacterCount": str(ds.characters),
            "totalBillableTokenCount": str(tokens),
            "tuningStepCount": str(tuning_steps),
            "userInputTokenDistribution": distribution(ds.input_tokens),
            "userOutputTokenDistribution": distribution(ds.output_tokens),
            "userMessagePerExampleDistribution": distribution(ds.messages, billable=False),
            "userDatasetExamples": [c for contents in ds.first_contents for c in contents[:1]],
        }
    }
