"""A local emulator of the Generative Language REST API's model-tuning surface.

Gemini API tuning was retired in May 2025; this emulator lets the unmodified SDKs
(google-generativeai over ``transport="rest"``, and google-genai) create tuned models, watch
their loss curves and query them, offline. Training is SIMULATED (:mod:`tunelab.simulator`)
and answers come from :mod:`tunelab.emulator.generation`; no model runs.

google-genai notes (3.6.1, Gemini API mode): it talks to ``/v1`` (the emulator serves every
path under ``/v1`` and ``/v1beta``); ``tunings.tune`` drops the training examples and
``learning_rate_multiplier`` from the request, so the service answers 400 -- pass them with
``http_options=types.HttpOptions(extra_body=server.tuning_extra_body(...))``; ``tunings.list``
raises ValueError before sending anything (Vertex only); ``tunings.get`` maps state
CREATING/ACTIVE/FAILED to JOB_STATE_RUNNING/SUCCEEDED/FAILED and exposes no snapshots.

Layout (moto style): ``store`` (resources, lazy job progress, SQLite), ``app`` (HTTP),
``errors`` (Google error JSON), ``catalog`` (base models), ``generation`` (answers, tokens),
``server`` (background server, ``connect()``, ``genai_client()``), ``__main__`` (CLI), and
``vertex/`` -- the Vertex AI tuning service (``tuningJobs``, gs:// buckets as a folder,
checkpoints; google-genai with ``vertexai=True``), see ``vertex/README.md``.

Cancelling (Gemini API): CancelOperation exists for tuning operations under ``/v1`` only, as
in Google's HTTP rules; it stops the job (model FAILED, operation error code 1 CANCELLED).
google-genai's ``tunings.cancel(name="tunedModels/ID")`` posts ``tunedModels/ID:cancel``, a URL
the service never had (404); ``tunings.cancel(name="tunedModels/ID/operations/OP")`` works.

The server's names are re-exported lazily: ``store``, ``generation`` and ``catalog`` (used by
``data/build.py`` and the tests) then import without FastAPI and uvicorn.
"""

from typing import Any

__all__ = ["connect", "genai_client", "start", "tuning_extra_body"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tunelab.emulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
