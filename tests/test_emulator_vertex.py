"""google-genai 3.6.1, unmodified, against the emulated Vertex AI tuning service.

``genai.Client(vertexai=True, project=..., location=..., credentials=...)`` sends
``/v1beta1/projects/P/locations/L/tuningJobs``; with an API key (express mode) it sends
``/v1beta1/tuningJobs``. Datasets are ``gs://`` objects in the emulator's stand-in buckets.
Most tests drive time with a fake clock on the Vertex store, so states are exact.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from tunelab.emulator import vertex
from tunelab.emulator.generation import count_tokens
from tunelab.emulator.server import genai_client

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [json.loads(line) for line in (ROOT / "data/nl_sql/train.jsonl").open()]
HELDOUT = [json.loads(line) for line in (ROOT / "data/nl_sql/heldout.jsonl").open()]
S = types.JobState

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")


def line(row: dict) -> str:
    return json.dumps(
        {
            "contents": [
                {"role": "user", "parts": [{"text": row["text_input"]}]},
                {"role": "model", "parts": [{"text": row["output"]}]},
            ]
        }
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(emulator) -> Clock:
    c = Clock()
    emulator.vertex.clock = c
    # 120 s before training (20 pending, 60 processing the dataset, 40 waiting for capacity),
    # 1.2 s per batch-4 step, 30 s post-processing, 10 s cancelling (fake seconds)
    emulator.vertex.time_scale = 1.0
    return c


@pytest.fixture
def client(emulator) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project="tunelab-course",
        location="us-central1",
        credentials=Credentials(token="offline-emulator"),
        http_options={"base_url": emulator.endpoint},
    )


@pytest.fixture
def data(emulator, tmp_path) -> dict[str, str]:
    files = {
        "train": "\n".join(line(r) for r in TRAIN[:400]) + "\n",
        "val": "\n".join(line(r) for r in TRAIN[400:]) + "\n",
        "small": "\n".join(line(r) for r in TRAIN[:40]) + "\n",
    }
    out = {}
    for name, text in files.items():
        (tmp_path / f"{name}.jsonl").write_text(text)
        out[name] = vertex.upload(
            tmp_path / f"{name}.jsonl",
            f"gs://tunelab-course/sql/{name}.jsonl",
            endpoint=emulator.endpoint,
        )
    return out


def tune(client, uri: str, *, base: str = "gemini-3.5-flash", **config) -> types.TuningJob:
    return client.tunings.tune(
        base_model=base,
        training_dataset=types.TuningDataset(gcs_uri=uri),
        config=types.CreateTuningJobConfig(**config),
    )


def wait(client, name: str, timeout: float = 30.0) -> types.TuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.tunings.get(name=name)
        if job.state in (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED, S.JOB_STATE_CANCELLED):
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.01)


def test_create_get_list_states_and_pagination(client, data, clock) -> None:
    job = tune(client, data["small"], epoch_count=3, tuned_model_display_name="sql-small")
    assert job.state == S.JOB_STATE_PENDING
    assert job.name.startswith("projects/") and "/locations/us-central1/tuningJobs/" in job.name
    project = job.name.split("/")[1]
    assert project.isdigit() and len(project) == 12  # Vertex answers with the project NUMBER
    assert job.supervised_tuning_spec.hyper_parameters.epoch_count == 3
    assert job.supervised_tuning_spec.hyper_parameters.adapter_size == types.AdapterSize(
        "ADAPTER_SIZE_FOUR"
    )
    assert job.tuned_model is None and job.start_time is None
    assert job.tuning_job_state is None  # a detail state only while RUNNING

    D = types.TuningJobState
    seen = []
    for dt in (21, 60, 40):  # the phases before the first step
        clock.t += dt
        now = client.tunings.get(name=job.name)
        seen.append((now.state, now.tuning_job_state))
    assert seen == [
        (S.JOB_STATE_RUNNING, D.TUNING_JOB_STATE_PROCESSING_DATASET),
        (S.JOB_STATE_RUNNING, D.TUNING_JOB_STATE_WAITING_FOR_CAPACITY),
        (S.JOB_STATE_RUNNING, D.TUNING_JOB_STATE_TUNING),
    ]  # 40 examples x 3 epochs / batch 4 = 30 steps
    running = client.tunings.get(name=job.name)
    assert running.tuning_job_metadata.completed_epoch_count == 0
    assert running.tuning_data_stats.supervised_tuning_data_stats.tuning_step_count == 30
    clock.t += 10 * 1.2
    assert client.tunings.get(name=job.name).tuning_job_metadata.completed_epoch_count == 1
    clock.t += 20 * 1.2
    post = client.tunings.get(name=job.name)
    assert (post.state, post.tuning_job_state) == (
        S.JOB_STATE_RUNNING,
        D.TUNING_JOB_STATE_POST_PROCESSING,
    )
    assert post.tuned_model is None and post.tuning_job_metadata.completed_epoch_count == 3
    clock.t += 30
    done = client.tunings.get(name=job.name)
    assert done.state == S.JOB_STATE_SUCCEEDED and done.tuning_job_state is None
    # RUNNING from 20 s: 100 s before the first step, 36 s of steps, 30 s post-processing
    assert (done.end_time - done.start_time).total_seconds() == pytest.approx(166.0)
    ckpts = done.tuned_model.checkpoints
    assert [(c.checkpoint_id, c.epoch, c.step) for c in ckpts] == [
        ("1", 1, 10),
        ("2", 2, 20),
        ("3", 3, 30),
    ]
    assert done.tuned_model.endpoint == ckpts[-1].endpoint
    assert len({c.endpoint for c in ckpts}) == 3
    assert done.tuned_model.model.endswith("@1")

    for i in range(2):
        tune(client, data["small"], epoch_count=1, tuned_model_display_name=f"more-{i}")
        clock.t += 1
    listed = list(client.tunings.list(config={"page_size": 2}))
    assert len(listed) == 3 and listed[-1].name == job.name  # newest first, over two pages
    page = client.tunings.list(config={"page_size": 2})
    assert len(page.page) == 2

    v1 = genai.Client(
        vertexai=True,
        project="tunelab-course",
        location="us-central1",
        credentials=Credentials(token="x"),
        http_options={"base_url": client._api_client._http_options.base_url, "api_version": "v1"},
    )
    assert v1.tunings.get(name=job.name).state == S.JOB_STATE_SUCCEEDED
    other = genai.Client(
        vertexai=True,
        project="another-project",
        location="us-central1",
        credentials=Credentials(token="x"),
        http_options={"base_url": client._api_client._http_options.base_url},
    )
    assert list(other.tunings.list()) == []
    with pytest.raises(errors.ClientError) as info:
        other.tunings.get(name=job.name.replace(project, "999999999999"))
    assert info.value.code == 404 and "The TuningJob does not exist" in info.value.message


def test_cancel_keeps_the_checkpoints_done_so_far(client, data, clock) -> None:
    job = tune(client, data["small"], epoch_count=5)
    clock.t += 120 + 25 * 1.2  # 25 of 50 steps: epochs 1 and 2 are complete
    client.tunings.cancel(name=job.name)
    clock.t += 5
    cancelling = client.tunings.get(name=job.name)
    assert cancelling.state == S.JOB_STATE_CANCELLING and not cancelling.has_ended
    assert cancelling.tuned_model is None
    client.tunings.cancel(name=job.name)  # the emulator: a repeated cancel changes nothing
    clock.t += 1000
    cancelled = client.tunings.get(name=job.name)
    assert cancelled.state == S.JOB_STATE_CANCELLED
    assert cancelled.error.code == 1
    assert cancelled.tuning_job_metadata.completed_epoch_count == 2
    assert [c.epoch for c in cancelled.tuned_model.checkpoints] == [1, 2]
    assert cancelled.tuned_model.endpoint == cancelled.tuned_model.checkpoints[-1].endpoint
    reply = client.models.generate_content(
        model=cancelled.tuned_model.checkpoints[0].endpoint, contents=TRAIN[0]["text_input"]
    )
    assert reply.text == TRAIN[0]["output"]  # a training prompt: memorised
    steps = vertex.metrics(cancelled, endpoint=client._api_client._http_options.base_url)
    assert steps["step"].max() == 25

    with pytest.raises(errors.ClientError) as info:
        client.tunings.cancel(name=job.name)
    assert (info.value.code, info.value.status) == (400, "FAILED_PRECONDITION")
    assert "in state JOB_STATE_CANCELLED" in info.value.message

    pending = tune(client, data["small"], epoch_count=1)
    client.tunings.cancel(name=pending.name)
    clock.t += 10
    gone = client.tunings.get(name=pending.name)
    assert gone.state == S.JOB_STATE_CANCELLED and gone.tuned_model is None
    assert gone.start_time is None


def test_early_checkpoint_of_an_overfitting_job_beats_the_last(client, data, emulator) -> None:
    emulator.vertex.time_scale = 1e6
    job = tune(
        client,
        data["train"],
        epoch_count=20,
        validation_dataset=types.TuningValidationDataset(gcs_uri=data["val"]),
        tuned_model_display_name="sql-20-epochs",
    )
    done = wait(client, job.name)
    assert done.state == S.JOB_STATE_SUCCEEDED
    assert len(done.tuned_model.checkpoints) == 20
    per_epoch = vertex.metrics(done, per="epoch", endpoint=emulator.endpoint)
    assert list(per_epoch.index) == list(range(1, 21))
    best = int(per_epoch["validation_loss"].idxmin())
    assert 3 <= best <= 10  # validation loss is U-shaped: it overfits afterwards
    assert per_epoch["train_loss"].iloc[-1] < per_epoch["train_loss"].iloc[best - 1]

    def score(endpoint: str) -> int:
        return sum(
            client.models.generate_content(model=endpoint, contents=h["text_input"]).text
            == h["output"]
            for h in HELDOUT
        )

    by_epoch = {c.epoch: c.endpoint for c in done.tuned_model.checkpoints}
    early, last = score(by_epoch[best]), score(done.tuned_model.endpoint)
    assert early > 0.8 * len(HELDOUT) and last < early / 2
    base = client.models.generate_content(model="gemini-3.5-flash", contents="Hello there")
    assert "simulated model" in base.text

    steps = vertex.metrics(done, endpoint=emulator.endpoint)
    assert list(steps.columns) == ["step", "epoch", "mean_loss", "compute_time"]
    assert len(steps) == 2000 and steps["step"].tolist() == list(range(1, 2001))
    from tunelab import monitor

    assert len(monitor.snapshots_frame(steps)) == 2000


def test_tuning_data_stats_for_the_cost_section(client, data, clock) -> None:
    job = tune(client, data["small"], epoch_count=4)
    clock.t += 121
    stats = client.tunings.get(name=job.name).tuning_data_stats.supervised_tuning_data_stats
    rows = TRAIN[:40]
    tokens = sum(count_tokens(r["text_input"]) + count_tokens(r["output"]) for r in rows)
    assert stats.tuning_dataset_example_count == 40
    assert stats.total_billable_token_count == tokens
    assert stats.total_tuning_character_count == sum(
        len(r["text_input"]) + len(r["output"]) for r in rows
    )
    assert stats.tuning_step_count == 40
    dist = stats.user_output_token_distribution
    assert dist.sum == sum(count_tokens(r["output"]) for r in rows)
    assert dist.min <= dist.median <= dist.max
    assert sum(b.count for b in dist.buckets) == 40
    assert stats.user_message_per_example_distribution.max == 2


def test_export_last_checkpoint_only_and_no_validation_metrics(client, data, emulator) -> None:
    emulator.vertex.time_scale = 1e6
    job = tune(client, data["small"], epoch_count=3, export_last_checkpoint_only=True)
    done = wait(client, job.name)
    assert [c.epoch for c in done.tuned_model.checkpoints] == [3]
    per_epoch = vertex.metrics(done.name, per="epoch", endpoint=emulator.endpoint)
    assert per_epoch["validation_loss"].isna().all() and len(per_epoch) == 3


def expect_400(call, *fragments: str) -> str:
    with pytest.raises(errors.ClientError) as info:
        call()
    assert info.value.code in (400, 404), info.value
    for fragment in fragments:
        assert fragment in info.value.message
    return info.value.message


def test_errors_raise_the_sdks_exceptions(client, data, emulator, tmp_path) -> None:
    expect_400(
        lambda: tune(client, "data/nl_sql/train.jsonl"),
        "training_dataset_uri",
        "not a valid Cloud Storage URI",
        "tunelab.emulator.vertex.upload",
    )
    msg = expect_400(lambda: tune(client, "gs://tunelab-course/sql/nope.jsonl"), "does not exist")
    assert "gs://tunelab-course/sql/nope.jsonl" in msg
    expect_400(lambda: tune(client, "gs://no-such-bucket/a.jsonl"), "bucket gs://no-such-bucket")
    expect_400(
        lambda: tune(client, data["small"], base="gemini-9-ultra"),
        "'gemini-9-ultra' is not supported",
        "gemini-3.5-flash",
    )
    for retired in ("gemini-2.0-flash-001", "gemini-2.0-flash-lite-001", "gemini-1.5-flash-002"):
        expect_400(lambda m=retired: tune(client, data["small"], base=m), "is not supported")
    expect_400(
        lambda: tune(client, data["small"], adapter_size="ADAPTER_SIZE_THIRTY_TWO"),
        "adapter_size: ADAPTER_SIZE_THIRTY_TWO is not supported for base model gemini-3.5-flash",
    )
    expect_400(
        lambda: tune(client, data["small"], validation_dataset={"gcs_uri": "gs://x/"}),
        "validation_dataset_uri",
    )
    expect_400(lambda: tune(client, data["small"], epoch_count=0), "epoch_count: 0 is out of range")
    expect_400(
        lambda: tune(
            client,
            data["small"],
            evaluation_config={
                "metrics": [{"bleu_spec": {}}],
                "output_config": {
                    "gcs_destination": {"output_uri_prefix": "gs://tunelab-course/e/"}
                },
            },
        ),
        "evaluation_config",
        "not emulated",
    )

    txt = tmp_path / "train.txt"
    txt.write_text(data_text := (tmp_path / "small.jsonl").read_text())
    uri = vertex.upload(txt, "gs://tunelab-course/sql/train.txt", endpoint=emulator.endpoint)
    expect_400(lambda: tune(client, uri), "is not a JSONL file")  # the request: at once
    assert data_text and emulator.vertex.records() == []

    # The file's contents are read while the job runs: a bad file is a FAILED job.
    def fails(name: str, rows: list[str], *fragments: str) -> None:
        bad = tmp_path / name
        bad.write_text("\n".join(rows))
        uri = vertex.upload(bad, f"gs://tunelab-course/{name}", endpoint=emulator.endpoint)
        job = tune(client, uri)  # accepted: the request itself is fine
        emulator.vertex.clock = lambda: time.time() + 1e6  # long after processing the dataset
        try:
            failed = client.tunings.get(name=job.name)
        finally:
            emulator.vertex.clock = time.time
        assert failed.state == S.JOB_STATE_FAILED and failed.has_ended
        assert failed.error.code == 3 and failed.tuned_model is None
        assert failed.tuning_data_stats is None
        for fragment in fragments:
            assert fragment in failed.error.message

    rows = [line(r) for r in TRAIN[:30]]
    rows[2] = rows[2].replace('"role": "model"', '"role": "assistant"')
    fails(
        "bad.jsonl",
        rows,
        'gs://tunelab-course/bad.jsonl line 3: contents[1].role: "assistant" is not a valid role',
    )
    rows = [line(r) for r in TRAIN[:30]]
    rows[4] = json.dumps(TRAIN[4])
    rows[7] = rows[7][:-5]
    fails("gemini-format.jsonl", rows, "line 5: contents: missing", "Gemini API's")
    rows[4] = line(TRAIN[4])
    fails("truncated.jsonl", rows, "truncated.jsonl line 8: not valid JSON")
    fails("few.jsonl", rows[:3], "3 training examples")

    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="projects/1/locations/us-central1/endpoints/42", contents="hi"
        )
    assert info.value.code == 404
    with pytest.raises(ValueError, match="not a valid Cloud Storage URI"):
        vertex.upload(txt, "s3://bucket/x.jsonl", endpoint=emulator.endpoint)
    raw = httpx.post(f"{emulator.endpoint}/v1beta1/tuningJobs", json={})
    assert raw.status_code == 401 and raw.json()["error"]["status"] == "UNAUTHENTICATED"


def test_express_mode_with_an_api_key(emulator, data) -> None:
    emulator.vertex.time_scale = 1e6

    def express(key: str) -> genai.Client:
        return genai.Client(
            vertexai=True, api_key=key, http_options={"base_url": emulator.endpoint}
        )

    client = express("key-one")
    job = tune(client, data["small"], epoch_count=2)
    assert "/locations/us-central1/tuningJobs/" in job.name
    done = wait(client, job.name)
    assert done.state == S.JOB_STATE_SUCCEEDED
    assert [j.name for j in client.tunings.list()] == [job.name]
    assert list(express("key-two").tunings.list()) == []
    reply = client.models.generate_content(model=done.tuned_model.endpoint, contents="Hi")
    assert reply.text


def test_gemini_api_cancel_as_the_service_had_it(emulator) -> None:
    from tunelab.emulator.server import tuning_extra_body

    emulator.store.time_scale = 1e-3
    client = genai_client(emulator.endpoint)
    exs = [types.TuningExample(text_input=f"w{i:04d}x", output=f"x{i:04d}w") for i in range(24)]
    job = client.tunings.tune(
        base_model="models/gemini-1.5-flash-001-tuning",
        training_dataset=types.TuningDataset(examples=exs),
        config=types.CreateTuningJobConfig(
            http_options=types.HttpOptions(extra_body=tuning_extra_body(exs))
        ),
    )
    with pytest.raises(errors.ClientError) as info:
        client.tunings.cancel(name=job.name)  # POST /v1/tunedModels/ID:cancel: no such URL
    assert info.value.code == 404
    op = emulator.store.get(job.name.removeprefix("tunedModels/")).operation_name
    client.tunings.cancel(name=op)  # POST /v1/tunedModels/ID/operations/OP:cancel
    assert client.tunings.get(name=job.name).state == S.JOB_STATE_FAILED


def test_jobs_survive_a_restart_with_state(tmp_path) -> None:
    from test_emulator_cli import launch, stop

    state = tmp_path / "emulator.sqlite"
    proc, url = launch("--state", str(state), "--time-scale", "1000000")
    try:
        src = tmp_path / "train.jsonl"
        src.write_text("\n".join(line(r) for r in TRAIN[:40]))
        uri = vertex.upload(src, "gs://persisted/train.jsonl", endpoint=url)
        client = genai.Client(
            vertexai=True,
            project="p",
            location="europe-west4",
            credentials=Credentials(token="x"),
            http_options={"base_url": url},
        )
        job = tune(client, uri, epoch_count=2)
        done = wait(client, job.name)
        answer = client.models.generate_content(
            model=done.tuned_model.endpoint, contents=HELDOUT[0]["text_input"]
        ).text
    finally:
        stop(proc)
    assert (tmp_path / "emulator.sqlite.gcs/persisted/train.jsonl").is_file()
    proc, url = launch("--state", str(state))
    try:
        client = genai.Client(
            vertexai=True,
            project="p",
            location="europe-west4",
            credentials=Credentials(token="x"),
            http_options={"base_url": url},
        )
        again = client.tunings.get(name=job.name)
        assert again.state == S.JOB_STATE_SUCCEEDED
        assert again.tuned_model == done.tuned_model
        assert [j.name for j in client.tunings.list()] == [job.name]
        reply = client.models.generate_content(
            model=again.tuned_model.endpoint, contents=HELDOUT[0]["text_input"]
        )
        assert reply.text == answer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            second = tune(client, uri, epoch_count=1)  # the bucket folder survived too
        assert second.state == S.JOB_STATE_PENDING
    finally:
        stop(proc)


def test_enterprise_flag_and_its_legacy_alias_reach_the_same_service(
    emulator, data, monkeypatch
) -> None:
    """google-genai 3.6.1 prefers ``enterprise=True`` (Gemini Enterprise Agent Platform, formerly
    Vertex AI); ``vertexai=True`` is its legacy alias, and ``GOOGLE_GENAI_USE_ENTERPRISE`` the
    environment form. All three send the same requests to the emulator."""
    emulator.vertex.time_scale = 1e6
    common = {
        "project": "tunelab-enterprise",
        "location": "us-central1",
        "credentials": Credentials(token="x"),
        "http_options": {"base_url": emulator.endpoint},
    }
    new = genai.Client(enterprise=True, **common)
    old = genai.Client(vertexai=True, **common)
    for var in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "true")
    env = genai.Client(**common)
    assert new.vertexai and old.vertexai and env.vertexai
    job = tune(new, data["small"], epoch_count=1)
    assert wait(old, job.name).state == S.JOB_STATE_SUCCEEDED
    assert [j.name for j in env.tunings.list()] == [job.name]
    with pytest.raises(ValueError, match="conflicting"):
        genai.Client(enterprise=True, vertexai=False, **common)
