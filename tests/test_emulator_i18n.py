"""The emulator's Gemini error messages follow the notebook's language; English stays exact."""

from __future__ import annotations

import re

import pytest

import tunelab.i18n
from tunelab.emulator import catalog
from tunelab.emulator import errors as E
from tunelab.emulator.store import Store

EXAMPLES = [{"textInput": f"question {i}", "output": f"answer {i}"} for i in range(24)]
HP = "tuned_model.tuning_task.hyperparameters"


def _body(**hyperparameters: object) -> dict:
    return {
        "baseModel": catalog.DEFAULT_TUNING_BASE,
        "tuningTask": {
            "trainingData": {"examples": {"examples": EXAMPLES}},
            "hyperparameters": hyperparameters,
        },
    }


# (request, error class, the exact English message, the field the Russian one must still name)
CASES = [
    (
        lambda s: s.create(_body(epochCount=0)),
        E.InvalidArgument,
        f"{HP}.epoch_count: 0 is out of range; it must be between 1 and 100",
        f"{HP}.epoch_count",
    ),
    (
        lambda s: s.create(_body(batchSize=1000)),
        E.InvalidArgument,
        f"{HP}.batch_size: 1000 is out of range; it must be between 1 and 64",
        f"{HP}.batch_size",
    ),
    (
        lambda s: s.create(_body(learningRate=0.001, learningRateMultiplier=1.0)),
        E.InvalidArgument,
        f"{HP}: learning_rate and learning_rate_multiplier are both set; they are one oneof "
        "(learning_rate_option), set only one",
        "learning_rate_multiplier",
    ),
    (
        lambda s: s.create({"baseModel": catalog.DEFAULT_TUNING_BASE}),
        E.InvalidArgument,
        "tuned_model.tuning_task: a tuning task is required",
        "tuned_model.tuning_task",
    ),
    (
        lambda s: s.create({**_body(), "baseModel": "models/no-such-model"}),
        E.NotFound,
        "tuned_model.base_model: models/no-such-model is not found for API version v1beta. "
        "Call ListModels to see the available models and their supported methods.",
        "models/no-such-model",
    ),
    (
        lambda s: s.get("no-such-model"),
        E.NotFound,
        "Tuned model tunedModels/no-such-model does not exist.",
        "tunedModels/no-such-model",
    ),
]


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunelab.i18n, "_chosen", None)
    monkeypatch.delenv("TUNELAB_LANG", raising=False)


@pytest.fixture
def russian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunelab.i18n, "_chosen", None)
    monkeypatch.setenv("TUNELAB_LANG", "ru")


def _error(call, cls: type[E.ApiError]) -> E.ApiError:
    store = Store()
    try:
        with pytest.raises(cls) as info:
            call(store)
    finally:
        store.close()
    return info.value


@pytest.mark.parametrize(("call", "cls", "english_text", "field"), CASES)
def test_messages_are_exact_english_by_default(english, call, cls, english_text, field) -> None:
    err = _error(call, cls)
    assert err.message == english_text
    assert json_message(err) == english_text


@pytest.mark.parametrize(("call", "cls", "english_text", "field"), CASES)
def test_messages_are_russian_in_a_russian_notebook(russian, call, cls, english_text, field):
    err = _error(call, cls)
    assert err.message != english_text
    assert re.search("[а-яё]", err.message, re.IGNORECASE), err.message
    assert field in err.message
    assert json_message(err) == err.message  # the error JSON carries the same text


def test_russian_range_error_uses_the_course_terms(russian) -> None:
    msg = _error(lambda s: s.create(_body(epochCount=0)), E.InvalidArgument).message
    assert msg.startswith(f"{HP}.epoch_count (число эпох): значение 0 ")
    assert "от 1 до 100" in msg
    msg = _error(lambda s: s.create(_body(batchSize=1000)), E.InvalidArgument).message
    assert "размер батча" in msg and "1000" in msg and "от 1 до 64" in msg


def test_set_language_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunelab.i18n, "_chosen", None)
    monkeypatch.delenv("TUNELAB_LANG", raising=False)
    tunelab.i18n.set_language("ru")
    try:
        msg = _error(lambda s: s.get("x1"), E.NotFound).message
    finally:
        tunelab.i18n.set_language("en")  # also puts pandas' number display back
    assert msg == "Дообученная модель tunedModels/x1 не существует."


def json_message(err: E.ApiError) -> str:
    body = err.to_dict()["error"]
    assert (body["code"], body["status"]) == (err.code, err.status)
    return body["message"]


# -- the Vertex AI service (tunelab.emulator.vertex) -------------------------------------------
def _vertex_errors() -> list[str]:
    """The messages of a few mistakes a student makes in lesson 08."""
    from tunelab.emulator.vertex import buckets, datasets
    from tunelab.emulator.vertex.store import VertexStore

    found = []
    gemini_line = b'{"text_input": "How many products?", "output": "SELECT COUNT(*) FROM products"}'
    for call in (
        lambda: datasets.parse(gemini_line, "gs://b/train.jsonl", role="training"),
        lambda: datasets.parse(b"{not json", "gs://b/train.jsonl", role="training"),
        lambda: buckets.parse_gs_uri("train.jsonl", "training_dataset_uri"),
    ):
        with pytest.raises(E.InvalidArgument) as info:
            call()
        found.append(info.value.message)
    store = VertexStore()
    try:
        with pytest.raises(E.NotFound) as info:
            store.get("123", "1", "us-central1")
        found.append(info.value.message)
    finally:
        store.close()
    return found


def test_vertex_errors_are_exact_english_by_default(english) -> None:
    messages = _vertex_errors()
    assert messages[0].startswith("gs://b/train.jsonl line 1: contents: missing; this line uses")
    assert messages[2].startswith("training_dataset_uri: 'train.jsonl' is not a valid Cloud")
    assert messages[3] == (
        "The TuningJob does not exist: projects/1/locations/us-central1/tuningJobs/123"
    )


def test_vertex_errors_are_russian_in_a_russian_notebook(russian) -> None:
    messages = _vertex_errors()
    for message in messages:
        assert re.search("[а-яё]", message, re.IGNORECASE), message
    assert messages[0].startswith("gs://b/train.jsonl, строка 1: contents: поля нет")
    assert '{"text_input": ..., "output": ...}' in messages[0]  # the formats stay code
    assert "tunelab.emulator.vertex.upload(local_path" in messages[2]
    assert "tuningJobs/123" in messages[3]
