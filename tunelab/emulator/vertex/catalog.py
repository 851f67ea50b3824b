"""The Gemini base models the emulated Vertex AI tuning service accepts.

Emulator's table, modelled on Vertex AI's supervised-tuning documentation (supported models
and adapter sizes change over time; check the docs before quoting numbers): ``baseModel``
may be the bare id (``gemini-2.5-flash``) or ``publishers/google/models/ID``, as on Vertex.
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


MODELS: tuple[VertexModel, ...] = (
    VertexModel("gemini-2.5-pro", "Gemini 2.5 Pro", (1, 2, 4, 8)),
    VertexModel("gemini-2.5-flash", "Gemini 2.5 Flash", (1, 2, 4, 8, 16)),
    VertexModel("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", (1, 2, 4, 8, 16)),
    VertexModel("gemini-2.0-flash-001", "Gemini 2.0 Flash", (1, 2, 4, 8)),
    VertexModel("gemini-2.0-flash-lite-001", "Gemini 2.0 Flash-Lite", (1, 2, 4, 8)),
)
_BY_ID = {m.model_id: m for m in MODELS}
DEFAULT_BASE = "gemini-2.5-flash"


def model_id(name: str) -> str:
    """``publishers/google/models/X`` (optionally under projects/P/locations/L/) -> ``X``."""
    marker = "publishers/google/models/"
    return name.split(marker, 1)[1] if marker in name else name


def find(name: str) -> VertexModel | None:
    return _BY_ID.get(model_id(name))


def adapter_name(size: int) -> str:
    return next(k for k, v in ADAPTER_SIZES.items() if v == size)
