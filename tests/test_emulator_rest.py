"""The raw REST surface (what curl or requests would see)."""

from __future__ import annotations

import json

import httpx
import pytest

KEY = {"x-goog-api-key": "offline-emulator"}
BASE = "models/gemini-1.5-flash-001-tuning"


@pytest.fixture
def http(emulator):
    with httpx.Client(base_url=emulator.endpoint, headers=KEY) as client:
        yield client


def create(http, model_id: str, n: int = 24) -> dict:
    rows = [{"textInput": f"Reverse the word w{i:04d}x", "output": f"x{i:04d}w"} for i in range(n)]
    r = http.post(
        "/v1beta/tunedModels",
        params={"tunedModelId": model_id},
        json={"baseModel": BASE, "tuningTask": {"trainingData": {"examples": {"examples": rows}}}},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_operation_is_served_under_v1_and_v1beta(http) -> None:
    op = create(http, "ops")
    for version in ("v1", "v1beta"):
        got = http.get(f"/{version}/{op['name']}").json()
        assert got["name"] == op["name"]
        assert got["metadata"]["totalSteps"] == 30
    listed = http.get("/v1beta/tunedModels/ops/operations").json()
    assert [o["name"] for o in listed["operations"]] == [op["name"]]
    everything = http.get("/v1/operations").json()
    assert [o["name"] for o in everything["operations"]] == [op["name"]]
    missing = http.get("/v1beta/tunedModels/ops/operations/nope")
    assert missing.status_code == 404
    # CancelOperation has an HTTP binding for tuning operations in v1 only (googleapis'
    # generativelanguage_v1.yaml); under v1beta the URL does not exist.
    cancel = http.post(f"/v1beta/{op['name']}:cancel")
    assert cancel.status_code == 404 and cancel.json()["error"]["status"] == "NOT_FOUND"
    done = http.post(f"/v1/{op['name']}:cancel")  # best effort: a finished job stays ACTIVE
    assert done.status_code == 200 and done.json() == {}
    assert http.get("/v1beta/tunedModels/ops").json()["state"] == "ACTIVE"


def test_v1_cancel_stops_a_running_job(http, emulator) -> None:
    emulator.store.time_scale = 1e-3  # stays CREATING for the whole test
    op = create(http, "stopped")
    assert http.post(f"/v1/{op['name']}:cancel").json() == {}
    got = http.get(f"/v1/{op['name']}").json()
    assert got["done"] is True
    assert got["error"] == {"code": 1, "message": "Operation cancelled."}
    model = http.get("/v1beta/tunedModels/stopped").json()
    assert model["state"] == "FAILED" and "snapshots" not in model["tuningTask"]
    # google-genai's tunings.cancel(name="tunedModels/ID") posts tunedModels/ID:cancel: no such URL.
    assert http.post("/v1/tunedModels/stopped:cancel").status_code == 404


def test_errors_use_google_json(http) -> None:
    r = http.post("/v1beta/tunedModels", content=b"{not json", headers={"content-type": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert err["message"].startswith("Invalid JSON payload received.")
    wrong_method = http.put("/v1beta/tunedModels/x")
    assert wrong_method.status_code == 404
    assert "Method PUT is not supported" in wrong_method.json()["error"]["message"]


def test_patch_with_update_mask(http) -> None:
    create(http, "patched")
    r = http.patch(
        "/v1beta/tunedModels/patched",
        params={"updateMask": "displayName,description"},
        json={"displayName": "New name", "description": "New text", "topK": 3},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["displayName"], r.json()["description"], r.json()["topK"]) == (
        "New name",
        "New text",
        64,
    )
    bad = http.patch("/v1beta/tunedModels/patched", params={"updateMask": "baseModel"}, json={})
    assert bad.status_code == 400 and "'base_model' cannot be updated" in bad.text
    assert http.delete("/v1beta/tunedModels/patched").json() == {}
    assert http.delete("/v1beta/tunedModels/patched").status_code == 404


def test_count_tokens_accepts_both_request_shapes(http) -> None:
    contents = [{"role": "user", "parts": [{"text": "Hello, world!"}]}]
    direct = http.post(f"/v1beta/{BASE}:countTokens", json={"contents": contents}).json()
    nested = http.post(
        f"/v1beta/{BASE}:countTokens",
        json={"generateContentRequest": {"model": BASE, "contents": contents}},
    ).json()
    assert direct == nested == {"totalTokens": 4}


def test_streaming_forms(http) -> None:
    create(http, "streamer")
    body = {"contents": [{"parts": [{"text": "Reverse the word w0002x"}]}]}
    sse = http.post(
        "/v1beta/tunedModels/streamer:streamGenerateContent", params={"alt": "sse"}, json=body
    )
    assert sse.headers["content-type"].startswith("text/event-stream")
    chunk = json.loads(sse.text.removeprefix("data: "))
    assert chunk["candidates"][0]["content"]["parts"][0]["text"] == "x0002w"
    array = http.post("/v1beta/tunedModels/streamer:streamGenerateContent", json=body).json()
    assert array[0]["candidates"][0]["finishReason"] == "STOP"


def test_empty_prompt_is_rejected(http) -> None:
    r = http.post(f"/v1beta/{BASE}:generateContent", json={"contents": []})
    assert r.status_code == 400 and "contents is not specified" in r.text


def test_list_models_pages(http) -> None:
    first = http.get("/v1beta/models", params={"pageSize": 2}).json()
    assert len(first["models"]) == 2 and "nextPageToken" in first
    rest = http.get(
        "/v1beta/models", params={"pageSize": 2, "pageToken": first["nextPageToken"]}
    ).json()
    names = [m["name"] for m in first["models"] + rest["models"]]
    assert BASE in names and len(names) == len(set(names))
