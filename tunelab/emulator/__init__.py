"""A local emulator of the Generative Language REST API's model-tuning surface.

Gemini API tuning was retired in May 2025; this emulator lets the unmodified SDKs
(google-generativeai over ``transport="rest"``, and google-genai) create tuned models, watch
their loss curves and query them, offline. Training is SIMULATED (:mod:`tunelab.simulator`)
and answers come from :mod:`tunelab.emulator.generation`; no model runs.

Layout (moto style): ``store`` (resources, lazy job progress, SQLite), ``app`` (HTTP),
``errors`` (Google error JSON), ``catalog`` (base models), ``generation`` (answers, tokens),
``server`` (background server, ``connect()``, ``genai_client()``), ``__main__`` (CLI).
"""

from tunelab.emulator.server import connect, genai_client, start

__all__ = ["connect", "genai_client", "start"]
