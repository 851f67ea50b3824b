"""The emulated Vertex AI tuning service: supervised tuning jobs on Gemini models, offline.

Gemini API tuning was retired; the ``tuningJobs`` of Gemini Enterprise Agent Platform (Vertex AI
until April 2026; same endpoint, ``aiplatform.googleapis.com``) are the tuning API that is
alive. google-genai talks to it with ``genai.Client(enterprise=True, ...)`` (``vertexai=True``:
the legacy alias); this package serves the
same REST surface from the course emulator (moto style: ``buckets`` -- a folder standing in
for Cloud Storage, ``datasets`` -- JSONL validation and ``tuningDataStats``, ``catalog`` --
tunable base models, ``store`` -- jobs, lazy progress, checkpoints, persistence, ``routes`` --
HTTP). See ``README.md`` beside this file for a runnable walk-through.

Helpers for notebooks (they talk HTTP, so they work with an in-process emulator from
``tunelab.emulator.connect()`` and with a shared one at ``$TUNELAB_ENDPOINT`` alike):

* :func:`upload` -- the stand-in for ``gsutil cp`` / the Cloud console upload;
* :func:`metrics` -- EMULATOR-ONLY loss curves as a DataFrame. Real Vertex AI shows them in
  the console and logs them to Vertex AI Experiments (the job's ``experiment`` field); its
  REST ``TuningJob`` carries no loss values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["metrics", "upload"]

API_KEY = "offline-emulator"


def _endpoint(endpoint: str | None) -> str:
    if endpoint:
        return endpoint.rstrip("/")
    from tunelab.emulator import server

    if server._endpoint:
        return server._endpoint.rstrip("/")
    env = os.environ.get("TUNELAB_ENDPOINT", "").strip()
    return (env or server.connect()).rstrip("/")


_client: Any = None


def _http() -> Any:
    """One HTTP client for the helpers: a new ``httpx`` client builds an SSL context (~30 ms
    of CPU), which per call cost more than the emulator's answer."""
    global _client
    if _client is None:
        import httpx

        _client = httpx.Client(timeout=60)
    return _client


def upload(local_path: str | os.PathLike, gs_uri: str, *, endpoint: str | None = None) -> str:
    """Copy a local file to ``gs://BUCKET/PATH`` in the emulator's stand-in Cloud Storage.

    Emulator helper, the stand-in for ``gsutil cp FILE gs://...`` (or ``gcloud storage cp``, or
    uploading in the Cloud console). It posts the file with Cloud Storage's JSON API media
    upload, so it also works against a shared emulator. Returns ``gs_uri``.
    """
    from tunelab.emulator import errors as E
    from tunelab.emulator.vertex.buckets import parse_gs_uri

    try:
        bucket, name = parse_gs_uri(gs_uri, "gs_uri")
    except E.ApiError as exc:
        raise ValueError(exc.message) from None
    data = Path(local_path).read_bytes()
    response = _http().post(
        f"{_endpoint(endpoint)}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "media", "name": name},
        content=data,
        headers={"x-goog-api-key": API_KEY, "content-type": "application/jsonl"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"upload to {gs_uri} failed: {response.text}")
    return gs_uri


def _job_name(job: Any) -> str:
    name = job if isinstance(job, str) else getattr(job, "name", None)
    if name is None and isinstance(job, dict):
        name = job.get("name")
    if not isinstance(name, str) or "/tuningJobs/" not in name:
        raise ValueError(
            f"metrics() needs a Vertex tuning job or its name (projects/P/locations/L/"
            f"tuningJobs/ID), got {job!r}"
        )
    return name


def metrics(job: Any, *, per: str = "step", endpoint: str | None = None) -> Any:
    """EMULATOR-ONLY: the loss curves of a Vertex tuning job so far, as a DataFrame.

    ``per="step"``: columns ``step, epoch, mean_loss, compute_time`` (training loss; the shape
    :func:`tunelab.monitor.plot_loss` draws). ``per="epoch"``: indexed by ``epoch``, columns
    ``step`` (the checkpoint's step), ``train_loss`` (mean over the epoch) and
    ``validation_loss`` (NaN without a validation dataset) -- pass it as
    ``plot_loss(metrics(job), validation=metrics(job, per="epoch"))``.

    Real Vertex AI does not return these numbers from ``tuningJobs.get``: it shows them in the
    console and in Vertex AI Experiments. The emulator serves them at the emulator-only URL
    ``GET /v1beta1/{job name}:emulatorMetrics``.
    """
    import numpy as np
    import pandas as pd

    if per not in ("step", "epoch"):
        raise ValueError(f"per must be 'step' or 'epoch', got {per!r}")
    name = _job_name(job)
    response = _http().get(
        f"{_endpoint(endpoint)}/v1beta1/{name}:emulatorMetrics",
        headers={"x-goog-api-key": API_KEY},
    )
    if response.status_code != 200:
        raise RuntimeError(f"metrics of {name} are unavailable: {response.text}")
    data = response.json()
    train = pd.DataFrame(data.get("trainingLoss") or [], columns=["step", "epoch", "loss", "time"])
    steps = pd.DataFrame(
        {
            "step": train["step"].astype(int),
            "epoch": train["epoch"].astype(int),
            "mean_loss": train["loss"].astype(float),
            "compute_time": pd.to_datetime(train["time"], utc=True),
        }
    )
    if per == "step":
        return steps
    val = {int(v["epoch"]): float(v["loss"]) for v in data.get("validationLoss", [])}
    grouped = steps.groupby("epoch")
    frame = pd.DataFrame(
        {
            "step": grouped["step"].max(),  # the epoch's last step so far (its checkpoint step)
            "train_loss": grouped["mean_loss"].mean(),
        }
    )
    frame["validation_loss"] = [val.get(int(e), np.nan) for e in frame.index]
    frame.index.name = "epoch"
    return frame
