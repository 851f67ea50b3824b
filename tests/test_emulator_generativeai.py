"""google-generativeai 0.8.x, unmodified, drives the emulator over transport="rest"."""

from __future__ import annotations

import csv
import datetime
import json
import time
import warnings

import httpx
import pytest
from google.api_core import exceptions as gexc

with warnings.catch_warnings():  # "support has ended": the course uses it on purpose
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai
    from google.generativeai import protos
    from google.generativeai.client import get_default_model_client
    from google.generativeai.operations import CreateTunedModelOperation

BASE = "models/gemini-1.5-flash-001-tuning"
STATE = protos.TunedModel.State


def rows(n: int = 24) -> list[dict[str, str]]:
    """``n`` word-reversal examples in google-generativeai's dict shape."""
    return [{"text_input": f"Reverse the word w{i:04d}x", "output": f"x{i:04d}w"} for i in range(n)]


def create(training_data=None, **kwargs) -> CreateTunedModelOperation:
    kwargs.setdefault("epoch_count", 3)
    kwargs.setdefault("batch_size", 4)
    return genai.create_tuned_model(
        source_model=BASE,
        training_data=rows() if training_data is None else training_data,
        **kwargs,
    )


def test_list_of_dicts_wait_bar_and_result(emulator) -> None:
    op = create(id="from-list", display_name="From a list", learning_rate=0.001)
    assert isinstance(op, CreateTunedModelOperation)
    assert op.name.startswith("tunedModels/from-list/operations/")
    assert op.metadata.total_steps == 18  # ceil(24 * 3 / 4)
    assert op.metadata.tuned_model == "tunedModels/from-list"
    statuses = list(op.wait_bar(disable=True))
    assert all(isinstance(s, protos.CreateTunedModelMetadata) for s in statuses)
    model = op.result()
    assert model.name == "tunedModels/from-list"
    assert model.state == STATE.ACTIVE
    assert model.display_name == "From a list"
    assert model.base_model == model.source_model == BASE
    assert (model.temperature, model.top_p, model.top_k) == (1.0, pytest.approx(0.95), 64)
    assert model.tuning_task.hyperparameters.epoch_count == 3
    assert model.tuning_task.hyperparameters.learning_rate == pytest.approx(0.001)
    snaps = model.tuning_task.snapshots
    assert [s["step"] for s in snaps] == list(range(1, 19))
    assert {s["epoch"] for s in snaps} == {1, 2, 3}
    assert all(isinstance(s["compute_time"], datetime.datetime) for s in snaps)
    assert all(s["mean_loss"] > 0 for s in snaps)
    assert model.tuning_task.complete_time >= model.tuning_task.start_time
    assert op.metadata.completed_steps == 18
    assert op.metadata.completed_percent == pytest.approx(100.0)


def test_snapshots_grow_while_the_job_runs(emulator) -> None:
    emulator.store.time_scale = 15.0  # 18 steps x 1.2 simulated s -> ~1.4 wall s
    create(id="growing")
    counts, states = [], []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = genai.get_tuned_model("tunedModels/growing")
        counts.append(len(model.tuning_task.snapshots))
        states.append(model.state)
        if model.state != STATE.CREATING:
            break
        time.sleep(0.03)
    assert states[0] == STATE.CREATING and states[-1] == STATE.ACTIVE
    assert counts == sorted(counts)
    assert any(0 < c < 18 for c in counts), counts
    assert counts[-1] == 18


def test_mapping_needs_matching_output_key(emulator) -> None:
    data = {
        "text_input": [r["text_input"] for r in rows()],
        "text_output": [r["output"] for r in rows()],
    }
    with pytest.raises(KeyError, match="The output key 'output' does not exist"):
        create(data, id="mapping")
    op = create(data, id="mapping", output_key="text_output")
    assert op.result().state == STATE.ACTIVE


def test_json_file(emulator, tmp_path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(rows(30)))
    op = create(str(path), id="from-json")
    assert op.metadata.total_steps == 23  # ceil(30 * 3 / 4)
    assert op.result().state == STATE.ACTIVE


def test_csv_file(emulator, tmp_path) -> None:
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text_input", "output"])
        writer.writeheader()
        writer.writerows(rows(21))
    op = create(path, id="from-csv", epoch_count=1, batch_size=7)
    assert op.metadata.total_steps == 3
    assert op.result().state == STATE.ACTIVE


def test_get_list_update_delete(emulator) -> None:
    for i in range(3):
        create(id=f"model-{i}", display_name=f"Model {i}").result()
    names = [m.name for m in genai.list_tuned_models(page_size=2)]  # two pages
    assert names == ["tunedModels/model-0", "tunedModels/model-1", "tunedModels/model-2"]

    got = genai.get_tuned_model("tunedModels/model-1")
    assert got.display_name == "Model 1" and got.state == STATE.ACTIVE
    assert isinstance(got.create_time, datetime.datetime)

    updated = genai.update_tuned_model(
        "tunedModels/model-1", {"description": "Reverses words", "display_name": "Renamed"}
    )
    assert (updated.description, updated.display_name) == ("Reverses words", "Renamed")
    assert updated.update_time > got.update_time
    assert genai.get_tuned_model("tunedModels/model-1").description == "Reverses words"

    genai.delete_tuned_model("tunedModels/model-1")
    assert [m.name for m in genai.list_tuned_models()] == [
        "tunedModels/model-0",
        "tunedModels/model-2",
    ]
    with pytest.raises(gexc.NotFound, match="tunedModels/model-1 does not exist"):
        genai.get_tuned_model("tunedModels/model-1")


def test_generate_content_and_count_tokens(emulator) -> None:
    create(id="reverser").result()
    model = genai.GenerativeModel("tunedModels/reverser")
    assert model.generate_content("Reverse the word w0003x").text == "x0003w"
    assert model.generate_content("  Reverse the word   w0003x ").text == "x0003w"
    other = model.generate_content("What is the capital of France?").text
    assert "simulated model" in other
    base = genai.GenerativeModel(BASE)
    assert base.count_tokens("Hello, world!").total_tokens == 4
    assert base.count_tokens("tokenization").total_tokens == 2
    response = base.generate_content("Reverse the word w0003x")
    assert response.usage_metadata.prompt_token_count == 5
    stream = list(model.generate_content("Reverse the word w0004x", stream=True))
    assert "".join(chunk.text for chunk in stream) == "x0004w"


def test_generate_on_an_unfinished_model_is_a_failed_precondition(emulator) -> None:
    emulator.store.time_scale = 0.01
    create(id="slow")
    with pytest.raises(gexc.BadRequest, match="tunedModels/slow is not ready"):
        genai.GenerativeModel("tunedModels/slow").generate_content("Reverse the word w0001x")


def test_models_are_listed_with_tuning_support(emulator) -> None:
    models = {m.name: m for m in genai.list_models()}
    tuning = models[BASE]
    assert "createTunedModel" in tuning.supported_generation_methods
    assert {"generateContent", "countTokens"} <= set(tuning.supported_generation_methods)
    assert genai.get_base_model(BASE).input_token_limit == 16384
    with pytest.raises(gexc.NotFound, match="models/gemini-9 is not found"):
        genai.get_model("models/gemini-9")


# --- errors surface as the SDK's real exception classes, naming the field ----------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"id": "Bad_Id"}, gexc.BadRequest, "tuned_model_id: 'Bad_Id' is not a valid id"),
        (
            {"training_data": rows(19)},
            gexc.BadRequest,
            "training_data.examples.examples: 19 examples were given; at least 20 are required",
        ),
        (
            {"training_data": [*rows(20), {"text_input": "q" * 40_001, "output": "a"}]},
            gexc.BadRequest,
            "examples[20].text_input: text_input is 40001 characters; the limit is 40,000",
        ),
        (
            {
                "training_data": [
                    {**r, "output": "o" * 6021} if i == 3 else r for i, r in enumerate(rows())
                ]
            },
            gexc.BadRequest,
            "tuned_model.tuning_task.training_data.examples.examples[3].output: output is 6021 "
            "characters; the limit is 5,000",
        ),
        ({"batch_size": 0}, gexc.BadRequest, "hyperparameters.batch_size: 0 is out of range"),
        ({"epoch_count": 500}, gexc.BadRequest, "hyperparameters.epoch_count: 500 is out of range"),
        ({"learning_rate": -1.0}, gexc.BadRequest, "hyperparameters.learning_rate: -1 is out"),
        ({"source_model": "models/gemini-9"}, gexc.NotFound, "models/gemini-9 is not found"),
    ],
)
def test_create_errors(emulator, kwargs, exc, message) -> None:
    training = kwargs.pop("training_data", None)
    source = kwargs.pop("source_model", BASE)
    with pytest.raises(exc) as info:
        genai.create_tuned_model(source_model=source, training_data=training or rows(), **kwargs)
    assert message in info.value.message
    assert list(genai.list_tuned_models()) == []


def test_duplicate_id_is_a_conflict(emulator) -> None:
    create(id="twice")
    with pytest.raises(gexc.Conflict, match="tunedModels/twice already exists"):
        create(id="twice")


def test_bad_page_token_is_a_bad_request(emulator) -> None:
    client = get_default_model_client()
    with pytest.raises(gexc.BadRequest, match="page_token: 'not-a-token' is not a valid"):
        list(client.list_tuned_models(page_token="not-a-token"))


# --- the lesson's original code fails where it would against the real service ----------------
def test_jsonl_path_is_parsed_as_csv(emulator, tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    with pytest.raises(KeyError) as info:
        operation = genai.create_tuned_model(  # noqa: F841 - the lesson's code, verbatim
            source_model="models/gemini-1.5-flash-001-tuning",
            training_data=str(path),
            id="sql-tuned",
            display_name="NL to SQL",
            epoch_count=5,
            batch_size=4,
            learning_rate=0.001,
        )
    # csv.DictReader took the first JSON line as the header row, so no 'text_input' column.
    assert info.value.args == ("text_input",)
    assert list(genai.list_tuned_models()) == []  # nothing reached the service


def test_snapshots_are_dicts_and_error_message_does_not_exist(emulator) -> None:
    create(id="lesson").result()
    model = genai.get_tuned_model("tunedModels/lesson")
    snap = model.tuning_task.snapshots[0]
    with pytest.raises(AttributeError, match="'dict' object has no attribute 'step'"):
        snap.step  # noqa: B018
    assert snap["step"] == 1
    with pytest.raises(AttributeError, match="has no attribute 'error_message'"):
        model.tuning_task.error_message  # noqa: B018


def test_multiplier_is_a_type_error_in_the_old_sdk_but_accepted_by_rest(emulator) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'learning_rate_multiplier'"):
        create(id="mult", learning_rate_multiplier=2.0)
    body = {
        "baseModel": BASE,
        "tuningTask": {
            "trainingData": {
                "examples": {
                    "examples": [
                        {"textInput": r["text_input"], "output": r["output"]} for r in rows()
                    ]
                }
            },
            "hyperparameters": {"learningRateMultiplier": 0.5, "epochCount": 2},
        },
    }
    r = httpx.post(
        f"{emulator.endpoint}/v1beta/tunedModels",
        params={"tunedModelId": "mult"},
        headers={"x-goog-api-key": "offline-emulator"},
        json=body,
    )
    assert r.status_code == 200, r.text
    got = httpx.get(
        f"{emulator.endpoint}/v1beta/tunedModels/mult", params={"key": "offline-emulator"}
    ).json()
    # Reported as the learning rate it resolves to (0.5 x the default 0.001), which also keeps
    # google-generativeai able to decode the model: its Hyperparameters has no multiplier.
    assert got["tuningTask"]["hyperparameters"] == {
        "epochCount": 2,
        "batchSize": 4,
        "learningRate": 0.0005,
    }
    model = genai.get_tuned_model("tunedModels/mult")
    assert model.tuning_task.hyperparameters.learning_rate == pytest.approx(0.0005)


def test_aggressive_learning_rate_ends_failed(emulator) -> None:
    op = create(rows(60), id="diverges", epoch_count=10, learning_rate=0.03)
    with pytest.raises(gexc.InternalServerError, match="too aggressive"):
        for _ in op.wait_bar(disable=True):
            pass
    assert op.done()
    assert "loss became NaN" in op.exception().message
    model = genai.get_tuned_model("tunedModels/diverges")
    assert model.state == STATE.FAILED
    assert 0 < len(model.tuning_task.snapshots) < op.metadata.total_steps
    assert op.metadata.completed_steps < op.metadata.total_steps


def test_get_operation_by_name(emulator) -> None:
    op = create(id="op-lookup")
    again = genai.get_operation(op.name)
    assert again.name == op.name
    assert again.result().name == "tunedModels/op-lookup"
