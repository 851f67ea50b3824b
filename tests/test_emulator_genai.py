"""google-genai 3.6.1, unmodified, against the emulator (Gemini API mode, not Vertex).

What google-genai really sends for the Gemini API (verified against the emulator):
* every call goes to ``/v1/...`` (its default API version), not ``/v1beta``;
* ``tunings.tune`` POSTs ``/v1/tunedModels`` with baseModel, displayName and
  ``tuningTask.hyperparameters`` (epochCount, batchSize, learningRate) but WITHOUT the
  training examples and WITHOUT learningRateMultiplier: its converter writes both into a dict
  it then discards. The service therefore rejects the job (400 naming training_data);
  ``http_options.extra_body`` puts the missing fields back;
* ``tunings.get`` GETs ``/v1/tunedModels/ID`` and maps the TunedModel to a TuningJob;
* ``tunings.list`` is Vertex-only and raises ValueError before sending anything.
"""

from __future__ import annotations

import time
import warnings

import pytest
from google.genai import errors, types

from tunelab.emulator.server import genai_client, tuning_extra_body

BASE = "models/gemini-1.5-flash-001-tuning"


def examples(n: int = 24) -> list[types.TuningExample]:
    return [
        types.TuningExample(text_input=f"Reverse the word w{i:04d}x", output=f"x{i:04d}w")
        for i in range(n)
    ]


@pytest.fixture
def client(emulator):
    return genai_client(emulator.endpoint)


def wait(client, name: str, timeout: float = 30.0) -> types.TuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.tunings.get(name=name)
        if job.state not in (types.JobState.JOB_STATE_RUNNING, types.JobState.JOB_STATE_QUEUED):
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.02)


def test_default_api_version_is_v1(client) -> None:
    assert client._api_client._http_options.api_version == "v1"


def test_tune_as_documented_sends_no_examples_and_is_rejected(client, emulator) -> None:
    # google-genai warns "experimental" once per process, so whether this call is the one that
    # warns depends on which test ran first in this worker: ignore it, judge the rejection
    with warnings.catch_warnings(), pytest.raises(errors.ClientError) as info:
        warnings.simplefilter("ignore")
        client.tunings.tune(
            base_model=BASE,
            training_dataset=types.TuningDataset(examples=examples()),
            config=types.CreateTuningJobConfig(
                epoch_count=3,
                learning_rate_multiplier=0.5,
                tuned_model_display_name="Reverser",
            ),
        )
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    assert "tuned_model.tuning_task.training_data: training data is required" in (
        info.value.message
    )
    assert emulator.store.records() == []


def tune(client, exs, *, multiplier=None, **config) -> types.TuningJob:
    extra = tuning_extra_body(exs, learning_rate_multiplier=multiplier)
    return client.tunings.tune(
        base_model=BASE,
        training_dataset=types.TuningDataset(examples=exs),
        config=types.CreateTuningJobConfig(
            http_options=types.HttpOptions(extra_body=extra), **config
        ),
    )


@pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")
def test_tune_get_and_generate_with_extra_body(client, emulator) -> None:
    emulator.store.time_scale = 1e-3  # this job stays RUNNING for the whole test
    slow = tune(client, examples(), multiplier=0.5, epoch_count=3, tuned_model_display_name="Slow")
    assert slow.name.startswith("tunedModels/slow-")
    assert slow.state == types.JobState.JOB_STATE_QUEUED
    running = client.tunings.get(name=slow.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING
    assert running.end_time is None

    emulator.store.time_scale = 1e5
    job = tune(
        client,
        examples(),
        multiplier=0.5,
        epoch_count=3,
        tuned_model_display_name="Reverser",
    )
    done = wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.base_model == BASE
    assert done.tuned_model.model == job.name == done.tuned_model.endpoint
    assert done.end_time >= done.start_time
    rec = emulator.store.get(job.name.removeprefix("tunedModels/"))
    assert rec.hyperparameters == {"epochCount": 3, "batchSize": 4, "learningRateMultiplier": 0.5}

    reply = client.models.generate_content(model=job.name, contents="Reverse the word w0007x")
    assert reply.text == "x0007w"
    assert reply.usage_metadata.prompt_token_count == 5
    count = client.models.count_tokens(model=BASE, contents="Hello, world!")
    assert count.total_tokens == 4


@pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")
def test_divergent_job_is_failed(client) -> None:
    job = tune(client, examples(60), multiplier=30.0, epoch_count=10)
    done = wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_FAILED
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=job.name, contents="Reverse the word w0001x")
    assert info.value.code == 400
    assert "its tuning job failed" in info.value.message


@pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")
def test_bad_hyperparameter_is_a_client_error(client) -> None:
    with pytest.raises(errors.ClientError) as info:
        tune(client, examples(), epoch_count=0)
    assert info.value.code == 400
    assert "tuned_model.tuning_task.hyperparameters.epoch_count: 0 is out of range" in (
        info.value.message
    )


def test_unknown_models_are_404(client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.tunings.get(name="tunedModels/nope")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="tunedModels/nope", contents="hi")
    assert info.value.code == 404
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="models/gemini-9", contents="hi")
    assert info.value.code == 404
    assert "models/gemini-9 is not found for API version v1" in info.value.message


def test_tunings_list_is_vertex_only(client) -> None:
    with pytest.raises(ValueError, match="only supported in Gemini Enterprise Agent Platform"):
        list(client.tunings.list())


def test_v1beta_works_too(emulator) -> None:
    client = genai_client(emulator.endpoint, http_options={"api_version": "v1beta"})
    assert client.models.count_tokens(model=BASE, contents="one two").total_tokens == 2
