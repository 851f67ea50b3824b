"""A class's shared emulator keeps users apart (``python -m tunelab.emulator --auth``).

Why: on the class hub one emulator serves everybody; each server's ``TUNELAB_ENDPOINT`` ends in
the user's signed token (``/u/TOKEN``). The unmodified SDKs, pointed at that endpoint, must
work as before, and a student must not list, read, generate with, cancel or delete another
student's tuned models (Gemini API) or tuning jobs (Vertex AI). Instructors see all. Without
``--auth`` nothing changes (the other emulator tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest

from tunelab.emulator.auth import sign, verify

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-0123456789"
TRAIN = [json.loads(line) for line in (ROOT / "data/nl_sql/train.jsonl").open()][:40]

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The emulator as the hub runs it: --auth, state on disk, a fast clock."""
    state = tmp_path_factory.mktemp("auth") / "emulator.sqlite"
    env = {**os.environ, "TUNELAB_EMULATOR_SECRET": SECRET, "TUNELAB_TIME_SCALE": "100000"}
    cmd = [sys.executable, "-m", "tunelab.emulator", "--port", "0", "--auth"]
    proc = subprocess.Popen(
        [*cmd, "--state", str(state)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    base = line.split("listening on ", 1)[1].strip()
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def endpoint(base: str, user: str, role: str = "student") -> str:
    return f"{base}/u/{sign(SECRET, user, role)}"


def test_tokens_are_signed_per_user_and_role() -> None:
    token = sign(SECRET, "ada", "student")
    assert verify(SECRET, token) == ("ada", "student")
    assert verify("other-secret", token) is None
    user, role, sig = token.split(".")
    assert verify(SECRET, f"{user}.instructor.{sig}") is None  # a student cannot promote
    assert verify(SECRET, f"{sign(SECRET, 'bob').split('.')[0]}.student.{sig}") is None
    with pytest.raises(ValueError):
        sign("", "ada")


def test_unsigned_requests_are_refused(shared) -> None:
    for url, headers in (
        (f"{shared}/v1beta/tunedModels", {"x-goog-api-key": "offline-emulator"}),
        (f"{shared}/u/not-a-token/v1beta/tunedModels", {"x-goog-api-key": "x"}),
        (f"{shared}/v1beta1/projects/p/locations/l/tuningJobs", {"authorization": "Bearer x"}),
    ):
        reply = httpx.get(url, headers=headers)
        assert reply.status_code == 401, (url, reply.text)
        assert "TUNELAB_ENDPOINT" in reply.json()["error"]["message"]
    # the signed token also works as the API key
    key = sign(SECRET, "ada")
    assert httpx.get(f"{shared}/v1beta/tunedModels", params={"key": key}).status_code == 200


def _gemini_model(base: str, user: str, model_id: str) -> str:
    """Create a tuned model with google-generativeai through the user's endpoint."""
    from tunelab.emulator.server import configure_generativeai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import google.generativeai as genai
    configure_generativeai(endpoint(base, user))
    op = genai.create_tuned_model(
        source_model="models/gemini-1.5-flash-001-tuning",
        training_data=[{"text_input": r["text_input"], "output": r["output"]} for r in TRAIN],
        id=model_id,
        epoch_count=1,
    )
    return op.name


def test_gemini_models_belong_to_their_creator(shared) -> None:
    import google.generativeai as genai

    _gemini_model(shared, "ada", "ada-model")
    _gemini_model(shared, "bob", "bob-model")
    ada = endpoint(shared, "ada")
    bob = endpoint(shared, "bob")
    key = {"x-goog-api-key": "offline-emulator"}  # what the lessons pass: any key
    names = [
        m["name"] for m in httpx.get(f"{ada}/v1beta/tunedModels", headers=key).json()["tunedModels"]
    ]
    assert names == ["tunedModels/ada-model"], names
    ops = httpx.get(f"{ada}/v1beta/operations", headers=key).json()["operations"]
    assert [o["name"].split("/")[1] for o in ops] == ["ada-model"]
    # the SDK's own calls, as ada: her model yes, bob's no
    from tunelab.emulator.server import configure_generativeai

    configure_generativeai(ada)
    assert genai.get_tuned_model("tunedModels/ada-model").name == "tunedModels/ada-model"
    assert [m.name for m in genai.list_tuned_models()] == ["tunedModels/ada-model"]
    from google.api_core import exceptions

    with pytest.raises(exceptions.Forbidden):
        genai.get_tuned_model("tunedModels/bob-model")
    for method, path in (
        ("GET", "/v1beta/tunedModels/bob-model"),
        ("PATCH", "/v1beta/tunedModels/bob-model?updateMask=description"),
        ("DELETE", "/v1beta/tunedModels/bob-model"),
        ("POST", "/v1beta/tunedModels/bob-model:generateContent"),
        ("GET", "/v1beta/tunedModels/bob-model/operations"),
        ("POST", "/v1/tunedModels/bob-model/operations/x:cancel"),
    ):
        reply = httpx.request(method, f"{ada}{path}", headers=key, json={})
        assert reply.status_code == 403, (method, path, reply.text)
        assert reply.json()["error"]["status"] == "PERMISSION_DENIED"
    # bob still has his model; an instructor sees both
    assert httpx.get(f"{bob}/v1beta/tunedModels/bob-model", headers=key).status_code == 200
    teacher = endpoint(shared, "teacher", "instructor")
    listed = httpx.get(f"{teacher}/v1beta/tunedModels", headers=key).json()["tunedModels"]
    assert {m["name"] for m in listed} >= {"tunedModels/ada-model", "tunedModels/bob-model"}
    assert httpx.get(f"{teacher}/v1beta/tunedModels/bob-model", headers=key).status_code == 200


def test_vertex_jobs_belong_to_their_creator(shared, tmp_path) -> None:
    from google import genai
    from google.genai import errors, types
    from google.oauth2.credentials import Credentials

    from tunelab.emulator import vertex

    data = tmp_path / "train.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "contents": [
                        {"role": "user", "parts": [{"text": r["text_input"]}]},
                        {"role": "model", "parts": [{"text": r["output"]}]},
                    ]
                }
            )
            for r in TRAIN
        )
        + "\n"
    )

    def client(user: str, role: str = "student") -> genai.Client:
        return genai.Client(
            vertexai=True,
            project="tunelab-course",  # the same project for the whole class
            location="us-central1",
            credentials=Credentials(token="offline-emulator"),
            http_options={"base_url": endpoint(shared, user, role)},
        )

    jobs = {}
    clients = {user: client(user) for user in ("ada", "bob")}  # a Client closes when dropped
    for user in ("ada", "bob"):
        uri = vertex.upload(
            data, f"gs://{user}-bucket/train.jsonl", endpoint=endpoint(shared, user)
        )
        jobs[user] = clients[user].tunings.tune(
            base_model="gemini-2.5-flash",
            training_dataset=types.TuningDataset(gcs_uri=uri),
            config=types.CreateTuningJobConfig(epoch_count=1),
        )
    ada = clients["ada"]
    assert [j.name for j in ada.tunings.list()] == [jobs["ada"].name]
    assert ada.tunings.get(name=jobs["ada"].name).name == jobs["ada"].name
    with pytest.raises(errors.ClientError) as denied:
        ada.tunings.get(name=jobs["bob"].name)
    assert denied.value.code == 403
    with pytest.raises(errors.ClientError):
        ada.tunings.cancel(name=jobs["bob"].name)
    with pytest.raises(RuntimeError, match="PERMISSION_DENIED"):
        vertex.metrics(jobs["bob"].name, endpoint=endpoint(shared, "ada"))
    assert len(vertex.metrics(jobs["ada"].name, endpoint=endpoint(shared, "ada"))) >= 0
    teacher = client("teacher", "instructor")
    assert {j.name for j in teacher.tunings.list()} >= {jobs["ada"].name, jobs["bob"].name}
    # bob's checkpoint endpoint, once deployed, is his too
    import time

    deadline = time.monotonic() + 60
    while True:
        job = clients["bob"].tunings.get(name=jobs["bob"].name)
        if job.state == types.JobState.JOB_STATE_SUCCEEDED or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.state
    model = job.tuned_model.endpoint
    assert clients["bob"].models.generate_content(model=model, contents="hi").text
    with pytest.raises(errors.ClientError) as denied:
        ada.models.generate_content(model=model, contents="hi")
    assert denied.value.code == 403
