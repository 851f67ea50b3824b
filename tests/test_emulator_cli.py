"""``python -m tunelab.emulator`` as a real process, --state persistence, and connect()."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tunelab.emulator import server

ROOT = Path(__file__).resolve().parents[1]
KEY = {"x-goog-api-key": "offline-emulator"}
READY = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def launch(*args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TUNELAB_TIME_SCALE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunelab.emulator", "--host", "127.0.0.1", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    match = READY.fullmatch(line.rstrip("\n"))
    if match is None:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {proc.stderr.read()}")
    return proc, f"http://127.0.0.1:{match[1]}"


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover - diagnostic path
        proc.kill()
        raise


def body(n: int = 30) -> dict:
    rows = [{"textInput": f"Reverse the word w{i:04d}x", "output": f"x{i:04d}w"} for i in range(n)]
    return {
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "displayName": "Persisted",
        "tuningTask": {
            "trainingData": {"examples": {"examples": rows}},
            "hyperparameters": {"epochCount": 2, "batchSize": 5},
        },
    }


def test_cli_state_survives_a_restart(tmp_path) -> None:
    state = tmp_path / "emulator.sqlite"
    proc, url = launch("--state", str(state), "--time-scale", "1e5")
    try:
        r = httpx.post(f"{url}/v1beta/tunedModels?tunedModelId=kept", json=body(), headers=KEY)
        assert r.status_code == 200, r.text
        op_name = r.json()["name"]
        time.sleep(0.05)
        first = httpx.get(f"{url}/v1beta/tunedModels/kept", headers=KEY).json()
        assert first["state"] == "ACTIVE"
        assert len(first["tuningTask"]["snapshots"]) == 12
    finally:
        stop(proc)
    assert proc.returncode == 0

    proc, url2 = launch("--state", str(state))
    try:
        again = httpx.get(f"{url2}/v1beta/tunedModels/kept", headers=KEY).json()
        assert again == first
        op = httpx.get(f"{url2}/v1/{op_name}", headers=KEY).json()
        assert op["done"] is True and op["response"]["name"] == "tunedModels/kept"
        listed = httpx.get(f"{url2}/v1beta/tunedModels", headers=KEY).json()
        assert [m["name"] for m in listed["tunedModels"]] == ["tunedModels/kept"]
    finally:
        stop(proc)


def test_cli_without_state_forgets(tmp_path) -> None:
    proc, url = launch("--time-scale", "1e5")
    try:
        assert httpx.post(f"{url}/v1beta/tunedModels?tunedModelId=gone", json=body(), headers=KEY)
        missing = httpx.get(f"{url}/v1beta/tunedModels/nothing", headers=KEY)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {
                "code": 404,
                "message": "Tuned model tunedModels/nothing does not exist.",
                "status": "NOT_FOUND",
            }
        }
        no_key = httpx.get(f"{url}/v1beta/tunedModels")
        assert no_key.status_code == 403
        assert no_key.json()["error"]["status"] == "PERMISSION_DENIED"
        wrong = httpx.get(f"{url}/v2/tunedModels", headers=KEY)
        assert wrong.status_code == 404 and "/v1beta/" in wrong.json()["error"]["message"]
    finally:
        stop(proc)


def test_cli_rejects_a_bad_time_scale() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tunelab.emulator", "--time-scale", "-3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--time-scale: '-3' must be a positive number" in result.stderr


def test_connect_is_idempotent_and_configures_generativeai(monkeypatch) -> None:
    monkeypatch.delenv("TUNELAB_ENDPOINT", raising=False)
    import tunelab

    first = tunelab.connect()
    second = tunelab.connect()
    assert first == second
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first)
    assert server.running() is not None and server.running().endpoint == first
    import google.generativeai as genai

    assert any(m.name.endswith("-tuning") for m in genai.list_models())
    client = server.genai_client()
    assert (
        client.models.count_tokens(
            model="models/gemini-1.5-flash-001-tuning", contents="two words"
        ).total_tokens
        == 2
    )


def test_connect_uses_tunelab_endpoint(monkeypatch, emulator) -> None:
    monkeypatch.setenv("TUNELAB_ENDPOINT", emulator.endpoint + "/")
    assert server.connect() == emulator.endpoint
    import google.generativeai as genai

    assert genai.get_base_model("models/gemini-1.5-flash-001-tuning").version == "001"


@pytest.mark.parametrize("scale", [1e5])
def test_emulator_fixture_is_fast_and_empty(emulator, scale) -> None:
    assert emulator.store.time_scale == scale
    assert emulator.store.records() == []
