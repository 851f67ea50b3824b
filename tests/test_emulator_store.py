"""The emulator's store without HTTP: validation, defaults, lazy progress, persistence."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from tunelab.emulator import errors as E
from tunelab.emulator.store import Store, default_time_scale, sim_step_seconds

BASE = "models/gemini-1.5-flash-001-tuning"


class Clock:
    """A hand-driven wall clock."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def examples(n: int, *, prefix: str = "Reverse the word", long_input: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        word = f"w{i:04d}x"
        out.append({"textInput": f"{prefix} {word}" + "." * long_input, "output": word[::-1]})
    return out


def body(n: int = 25, **hyper) -> dict:
    task: dict = {"trainingData": {"examples": {"examples": examples(n)}}}
    if hyper:
        task["hyperparameters"] = hyper
    return {"baseModel": BASE, "displayName": "Reverser", "tuningTask": task}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    return Store(time_scale=100.0, clock=clock)


def model(store: Store, model_id: str) -> dict:
    return json.loads(store.tuned_model_json(store.get(model_id)))


def operation(store: Store, model_id: str) -> dict:
    return json.loads(store.operation_json(store.get(model_id)))


def test_total_steps_is_ceil_of_examples_times_epochs_over_batch(store: Store) -> None:
    rec = store.create(body(25, epochCount=3, batchSize=4), "a")
    assert rec.total_steps == math.ceil(25 * 3 / 4) == 19
    rec = store.create(body(20, epochCount=5, batchSize=2), "b")
    assert operation(store, "b")["metadata"]["totalSteps"] == 50


def test_operation_metadata_names_model_and_type(store: Store) -> None:
    store.create(body(), "m1")
    op = operation(store, "m1")
    assert op["name"].startswith("tunedModels/m1/operations/")
    meta = op["metadata"]
    assert meta["@type"] == (
        "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
    )
    assert meta["tunedModel"] == "tunedModels/m1"
    assert "done" not in op


def test_defaults_are_filled_and_echoed(store: Store) -> None:
    store.create(body(25), "small")
    hp = model(store, "small")["tuningTask"]["hyperparameters"]
    assert hp == {"epochCount": 5, "batchSize": 4, "learningRate": 0.001}
    big = body(2000)
    store.create(big, "large")
    hp = model(store, "large")["tuningTask"]["hyperparameters"]
    assert hp == {"epochCount": 5, "batchSize": 16, "learningRate": 0.0002}


def test_learning_rate_multiplier_is_reported_as_the_actual_learning_rate(store: Store) -> None:
    rec = store.create(body(25, learningRateMultiplier=0.5, epochCount=2), "mult")
    assert rec.hyperparameters["learningRateMultiplier"] == 0.5
    assert model(store, "mult")["tuningTask"]["hyperparameters"] == {
        "epochCount": 2,
        "batchSize": 4,
        "learningRate": 0.0005,  # 0.5 x the default 0.001
    }
    store.create(body(2000, learningRateMultiplier=2.0, epochCount=1), "mult-large")
    hp = model(store, "mult-large")["tuningTask"]["hyperparameters"]
    assert hp == {"epochCount": 1, "batchSize": 16, "learningRate": 0.0004}  # 2 x 0.0002


def test_multiplier_and_learning_rate_mean_the_same_step_size(store: Store) -> None:
    a = store.create(body(25, learningRateMultiplier=3.0), "by-mult")
    b = store.create(body(25, learningRate=0.003), "by-rate")
    assert store.plan(a).run.hparams.multiplier == pytest.approx(3.0)
    assert store.plan(b).run.hparams.multiplier == pytest.approx(3.0)
    large = store.create(body(2000, learningRateMultiplier=5.0, epochCount=1), "by-mult-large")
    assert store.plan(large).run.hparams.learning_rate == pytest.approx(0.001)  # 5 x 0.0002


def test_snake_case_json_names_are_accepted(store: Store) -> None:
    snake = {
        "base_model": BASE,
        "tuning_task": {
            "training_data": {
                "examples": {
                    "examples": [
                        {"text_input": e["textInput"], "output": e["output"]} for e in examples(20)
                    ]
                }
            },
            "hyperparameters": {"epoch_count": 2, "batch_size": 5},
        },
    }
    rec = store.create(snake, "snake")
    assert rec.total_steps == 8


def test_progress_is_computed_lazily_from_the_clock(store: Store, clock: Clock) -> None:
    rec = store.create(body(40, epochCount=2, batchSize=4), "lazy")
    step = sim_step_seconds(4) / 100.0
    first = model(store, "lazy")
    assert first["state"] == "CREATING"
    assert "snapshots" not in first["tuningTask"]
    assert "completeTime" not in first["tuningTask"]

    clock.t += 7.5 * step
    mid = model(store, "lazy")
    assert mid["state"] == "CREATING"
    assert [s["step"] for s in mid["tuningTask"]["snapshots"]] == list(range(1, 8))
    assert operation(store, "lazy")["metadata"]["completedSteps"] == 7
    assert operation(store, "lazy")["metadata"]["completedPercent"] == 35

    clock.t += 100 * step
    done = model(store, "lazy")
    assert done["state"] == "ACTIVE"
    snaps = done["tuningTask"]["snapshots"]
    assert len(snaps) == rec.total_steps == 20
    assert {s["epoch"] for s in snaps} == {1, 2}
    assert all(set(s) == {"step", "epoch", "meanLoss", "computeTime"} for s in snaps)
    assert done["tuningTask"]["completeTime"] == snaps[-1]["computeTime"]
    op = operation(store, "lazy")
    assert op["done"] is True
    assert op["response"]["@type"].endswith("v1beta.TunedModel")
    assert op["response"]["state"] == "ACTIVE"
    assert "trainingData" not in json.dumps(op)  # INPUT_ONLY: never returned


def test_default_job_takes_five_to_ten_wall_seconds() -> None:
    # The brief's yardstick: 500 examples, 5 epochs, batch 4 at the default time scale.
    steps = math.ceil(500 * 5 / 4)
    assert 5.0 <= steps * sim_step_seconds(4) / default_time_scale() <= 10.0


def test_same_request_gives_identical_json(clock: Clock) -> None:
    a, b = Store(clock=clock), Store(clock=clock)
    a.create(body(30), "same")
    b.create(body(30), "same")
    clock.t += 60
    assert a.tuned_model_json(a.get("same")) == b.tuned_model_json(b.get("same"))


def test_generated_ids_are_deterministic_valid_and_unique(clock: Clock) -> None:
    ids = [Store(clock=clock).create(body()).model_id for _ in range(2)]
    assert ids[0] == ids[1]
    assert ids[0].startswith("reverser-")
    s = Store(clock=clock)
    first, second = s.create(body()).model_id, s.create(body()).model_id
    assert first != second
    nameless = dict(body())
    del nameless["displayName"]
    assert s.create(nameless).model_id.startswith("tuned-model-")


def test_divergent_job_ends_failed_with_explanation(store: Store, clock: Clock) -> None:
    rec = store.create(body(100, learningRateMultiplier=25.0, epochCount=5), "boom")
    clock.t += 10_000
    m = model(store, "boom")
    assert m["state"] == "FAILED"
    snaps = m["tuningTask"]["snapshots"]
    assert 0 < len(snaps) < rec.total_steps
    assert all(math.isfinite(s["meanLoss"]) for s in snaps)
    op = operation(store, "boom")
    assert op["done"] is True and "response" not in op
    assert op["error"]["code"] == 13
    assert "too aggressive" in op["error"]["message"]
    assert op["metadata"]["completedSteps"] < rec.total_steps


@pytest.mark.parametrize(
    ("mutate", "tuned_id", "cls", "message"),
    [
        (lambda b: b, "Bad_Id", E.InvalidArgument, "tuned_model_id: 'Bad_Id' is not a valid id"),
        (lambda b: b, "a" * 41, E.InvalidArgument, "tuned_model_id:"),
        (lambda b: b, "ends-with-", E.InvalidArgument, "must match"),
        (
            lambda b: b["tuningTask"]["trainingData"]["examples"].update(examples=examples(15)),
            None,
            E.InvalidArgument,
            "tuned_model.tuning_task.training_data.examples.examples: 15 examples were given; "
            "at least 20 are required",
        ),
        (
            lambda b: b["tuningTask"]["trainingData"]["examples"]["examples"][3].update(
                output="x" * 6021
            ),
            None,
            E.InvalidArgument,
            "tuned_model.tuning_task.training_data.examples.examples[3].output: output is 6021 "
            "characters; the limit is 5,000",
        ),
        (
            lambda b: b["tuningTask"]["trainingData"]["examples"]["examples"][7].update(
                textInput="y" * 40_001
            ),
            None,
            E.InvalidArgument,
            "examples[7].text_input: text_input is 40001 characters; the limit is 40,000",
        ),
        (
            lambda b: b["tuningTask"]["trainingData"]["examples"]["examples"][0].update(output=""),
            None,
            E.InvalidArgument,
            "examples[0].output: output is required",
        ),
        (
            lambda b: b["tuningTask"].update(hyperparameters={"batchSize": 0}),
            None,
            E.InvalidArgument,
            "tuned_model.tuning_task.hyperparameters.batch_size: 0 is out of range",
        ),
        (
            lambda b: b["tuningTask"].update(hyperparameters={"epochCount": "five"}),
            None,
            E.InvalidArgument,
            "Invalid value at 'tuned_model.tuning_task.hyperparameters.epoch_count' (TYPE_INT32)",
        ),
        (
            lambda b: b["tuningTask"].update(hyperparameters={"learningRate": -0.1}),
            None,
            E.InvalidArgument,
            "hyperparameters.learning_rate: -0.1 is out of range",
        ),
        (
            lambda b: b["tuningTask"].update(
                hyperparameters={"learningRate": 0.001, "learningRateMultiplier": 1.0}
            ),
            None,
            E.InvalidArgument,
            "learning_rate and learning_rate_multiplier are both set",
        ),
        (
            lambda b: b["tuningTask"].update(hyperparameters={"learning_rate_multiplyer": 2}),
            None,
            E.InvalidArgument,
            'Unknown name "learning_rate_multiplyer" at '
            "'tuned_model.tuning_task.hyperparameters': Cannot find field.",
        ),
        (
            lambda b: b.update(baseModel="models/gemini-9-ultra"),
            None,
            E.NotFound,
            "tuned_model.base_model: models/gemini-9-ultra is not found",
        ),
        (
            lambda b: b.update(baseModel="models/gemini-1.5-flash"),
            None,
            E.InvalidArgument,
            "models/gemini-1.5-flash does not support createTunedModel",
        ),
        (lambda b: b.pop("baseModel"), None, E.InvalidArgument, "base model is required"),
        (lambda b: b.pop("tuningTask"), None, E.InvalidArgument, "tuning task is required"),
        (
            lambda b: b.update(displayName="d" * 41),
            None,
            E.InvalidArgument,
            "tuned_model.display_name: display name is 41 characters; the limit is 40",
        ),
        (
            lambda b: b.update(temperature=3.5),
            None,
            E.InvalidArgument,
            "tuned_model.temperature: 3.5 is out of range; it must be between 0 and 2",
        ),
        (
            lambda b: b.update(topK=0),
            None,
            E.InvalidArgument,
            "tuned_model.top_k: 0 is out of range; it must be >= 1",
        ),
        (
            lambda b: b["tuningTask"].update(hyperparameters={"learningRateMultiplier": 0}),
            None,
            E.InvalidArgument,
            "hyperparameters.learning_rate_multiplier: 0 is out of range; it must be greater "
            "than 0 and at most 100",
        ),
        (
            lambda b: b.update(description=["not", "text"]),
            None,
            E.InvalidArgument,
            "Invalid value at 'tuned_model.description' (TYPE_STRING)",
        ),
    ],
)
def test_invalid_requests_name_the_field(store, mutate, tuned_id, cls, message) -> None:
    b = body()
    mutate(b)
    with pytest.raises(cls) as info:
        store.create(b, tuned_id)
    assert message in info.value.message
    assert store.records() == []


def test_dataset_over_4_mb_is_rejected(store: Store) -> None:
    big = body(0)
    big["tuningTask"]["trainingData"]["examples"]["examples"] = examples(110, long_input=39_000)
    with pytest.raises(E.InvalidArgument, match=r"training_data: the examples hold 4\.\d+ MB"):
        store.create(big, "big")


def test_duplicate_id_conflicts(store: Store) -> None:
    store.create(body(), "dup")
    with pytest.raises(E.AlreadyExists, match="tunedModels/dup already exists"):
        store.create(body(), "dup")


def test_unknown_model_is_not_found(store: Store) -> None:
    with pytest.raises(E.NotFound, match="tunedModels/ghost does not exist"):
        store.get("ghost")


def test_list_pages_and_rejects_bad_tokens(store: Store, clock: Clock) -> None:
    for i in range(23):
        clock.t += 1
        store.create(body(20, epochCount=1), f"m{i:02d}")
    seen, token, pages = [], None, 0
    while True:
        page, token = store.list(10, token)
        pages += 1
        seen += [r.model_id for r in page]
        if token is None:
            break
    assert pages == 3
    assert seen == [f"m{i:02d}" for i in range(23)]
    with pytest.raises(E.InvalidArgument, match="page_token: 'garbage!' is not a valid"):
        store.list(10, "garbage!")
    with pytest.raises(E.InvalidArgument, match="page_size"):
        store.list(-1, None)


def test_update_changes_only_masked_fields(store: Store, clock: Clock) -> None:
    store.create(body(), "upd")
    clock.t += 5
    store.update("upd", {"displayName": "New", "description": "ignored"}, ["displayName"])
    m = model(store, "upd")
    assert m["displayName"] == "New"
    assert "description" not in m
    store.update("upd", {"description": "Now set"}, ["description"])
    assert model(store, "upd")["description"] == "Now set"
    with pytest.raises(E.InvalidArgument, match="update_mask: field 'state' cannot be updated"):
        store.update("upd", {"state": "ACTIVE"}, ["state"])
    with pytest.raises(E.InvalidArgument, match="tuned_model.display_name"):
        store.update("upd", {"display_name": "z" * 50}, ["display_name"])


def test_delete_removes_model(store: Store) -> None:
    store.create(body(), "gone")
    store.delete("gone")
    with pytest.raises(E.NotFound):
        store.get("gone")
    with pytest.raises(E.NotFound):
        store.delete("gone")


def test_state_file_survives_a_new_store(tmp_path, clock: Clock) -> None:
    path = tmp_path / "state.sqlite"
    first = Store(path, time_scale=100.0, clock=clock)
    first.create(body(40, epochCount=2), "kept")
    first.create(body(20), "dropped")
    first.update("kept", {"description": "persisted"}, ["description"])
    first.delete("dropped")
    before = first.tuned_model_json(first.get("kept"))
    first.close()

    second = Store(path, time_scale=5.0, clock=clock)
    assert [r.model_id for r in second.records()] == ["kept"]
    assert second.tuned_model_json(second.get("kept")) == before
    clock.t += 3600  # the job kept "running" while the server was down
    assert model(second, "kept")["state"] == "ACTIVE"
    assert model(second, "kept")["description"] == "persisted"
    second.close()


def test_time_scale_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("TUNELAB_TIME_SCALE", "250")
    assert default_time_scale() == 250.0
    monkeypatch.setenv("TUNELAB_TIME_SCALE", "fast")
    with pytest.raises(ValueError, match="TUNELAB_TIME_SCALE must be a positive number"):
        default_time_scale()
    monkeypatch.delenv("TUNELAB_TIME_SCALE")
    assert default_time_scale() == 100.0


def test_pages_follow_creation_order_even_across_deletes(store: Store, clock: Clock) -> None:
    base = clock.t
    for model_id, offset in (("a", 0.5), ("b", 0.55), ("c", 1.25), ("d", 10.0)):
        clock.t = base + offset
        store.create(body(20, epochCount=1), model_id)
    first, token = store.list(2, None)
    assert [r.model_id for r in first] == ["a", "b"]
    store.delete("b")  # the model the token points after is gone
    rest, token = store.list(2, token)
    assert [r.model_id for r in rest] == ["c", "d"] and token is None


def test_a_state_file_that_is_not_one_is_named(tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some notes\n" * 100)
    with pytest.raises(ValueError, match=r"notes\.txt: not an emulator state file"):
        Store(text)
    other = tmp_path / "other.sqlite"  # an SQLite file whose tuned_models rows are not ours
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE tuned_models (id TEXT, create_time REAL, doc TEXT)")
    conn.execute("INSERT INTO tuned_models VALUES ('x', 0, '{\"colour\": \"red\"}')")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"other\.sqlite: not an emulator state file"):
        Store(other)
