"""The Gemini base models the emulated Vertex AI tuning service accepts.

Emulator's table, modelled on the supervised-tuning page of Gemini Enterprise Agent Platform
(formerly Vertex AI). Supported models, adapter sizes and retirement dates change over time:
check Google's supported-models list and model-versions page before quoting them. Models
already retired (the ``gemini-2.0-flash-*-001`` family, Gemini 1.5) are not served.
``baseModel`` may be the bare id (``gemini-3.5-flash``) or ``publishers/google/models/ID``, as
on Vertex.

``retires`` records the retirement date Google's model-versions page gave when this table was
written (``None``: not recorded here). It is information only: the emulator does not enforce it.
On the real service new tuning jobs on a model are refused about a month before it retires,
and a tuned model retires with its base model.
"""

from __future__ import annotations

from dataclasses import dataclass

ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}


@dataclass(frozen=True)
class VertexModel:
    model_id: str
    display_name: str
    adapter_sizes: tuple[int, ...]
    default_adapter: int = 4
    retires: str | None = None  # ISO date, information only (see the module docstring)


MODELS: tuple[VertexModel, ...] = (
    # Adapter sizes of the Gemini 3.x models: the emulator's assumption (same as 2.5 Flash).
    VertexModel("gemini-3.5-flash", "Gemini 3.5 Flash", (1, 2, 4, 8, 16)),
    VertexModel("gemini-3.5-flash-lite", "Gemini 3.5 Flash-Lite", (1, 2, 4, 8, 16)),
    VertexModel("gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", (1, 2, 4, 8, 16)),
    VertexModel("gemini-2.5-pro", "Gemini 2.5 Pro", (1, 2, 4, 8)),
    # "no earlier than" 16 Oct 2026 on the model-versions page when this was written
    VertexModel("gemini-2.5-flash", "Gemini 2.5 Flash", (1, 2, 4, 8, 16), retires="2026-10-16"),
    VertexModel("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", (1, 2, 4, 8, 16)),
)
_BY_ID = {m.model_id: m for m in MODELS}
DEFAULT_BASE = "gemini-3.5-flash"


def model_id(name: str) -> str:
    """``publishers/google/models/X`` (optionally under projects/P/locations/L/) -> ``X``."""
    marker = "publishers/google/models/"
    return name.split(marker, 1)[1] if marker in name else name


def find(name: str) -> VertexModel | None:
    return _BY_ID.get(model_id(name))


def adapter_name(size: int) -> str:
    return next(k for k, v in ADAPTER_SIZES.items() if v == size)
