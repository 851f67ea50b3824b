"""The base models the emulator serves under ``/v1beta/models``.

Values mirror what the Generative Language API listed for these models while Gemini API tuning
existed (token limits, sampling defaults, supported methods), so ``genai.list_models()`` and
``genai.get_base_model()`` print what a student would have seen. Only the models marked with
``createTunedModel`` accept tuning jobs, exactly as on the real service.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

TUNING_METHOD = "createTunedModel"


@dataclass(frozen=True)
class BaseModel:
    """One ``Model`` resource (google.ai.generativelanguage.v1beta.Model)."""

    name: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    supported_generation_methods: tuple[str, ...]
    temperature: float
    max_temperature: float
    top_p: float
    top_k: int

    @property
    def tunable(self) -> bool:
        return TUNING_METHOD in self.supported_generation_methods

    def to_json(self) -> dict:
        """Proto3 JSON (camelCase, default values omitted) as the REST API returns it."""
        out = {
            "name": self.name,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": list(self.supported_generation_methods),
            "temperature": self.temperature,
            "maxTemperature": self.max_temperature,
            "topP": self.top_p,
            "topK": self.top_k,
        }
        return out


_FLASH_001 = BaseModel(
    name="models/gemini-1.5-flash-001",
    version="001",
    display_name="Gemini 1.5 Flash 001",
    description="Fast and versatile multimodal model for scaling across diverse tasks "
    "(simulated by the Fine-Tuning Lab emulator).",
    input_token_limit=1000000,
    output_token_limit=8192,
    supported_generation_methods=("generateContent", "countTokens"),
    temperature=1.0,
    max_temperature=2.0,
    top_p=0.95,
    top_k=64,
)

BASE_MODELS: tuple[BaseModel, ...] = (
    BaseModel(
        name="models/gemini-1.5-flash-001-tuning",
        version="001",
        display_name="Gemini 1.5 Flash 001 Tuning",
        description="Version of Gemini 1.5 Flash that supports tuning "
        "(simulated by the Fine-Tuning Lab emulator).",
        input_token_limit=16384,
        output_token_limit=8192,
        supported_generation_methods=("generateContent", "countTokens", TUNING_METHOD),
        temperature=1.0,
        max_temperature=2.0,
        top_p=0.95,
        top_k=64,
    ),
    BaseModel(
        name="models/gemini-1.0-pro-001",
        version="001",
        display_name="Gemini 1.0 Pro 001 (Tuning)",
        description="The original Gemini 1.0 Pro model version that supports tuning "
        "(simulated by the Fine-Tuning Lab emulator).",
        input_token_limit=30720,
        output_token_limit=2048,
        supported_generation_methods=("generateContent", "countTokens", TUNING_METHOD),
        temperature=0.9,
        max_temperature=1.0,
        top_p=1.0,
        top_k=1,
    ),
    _FLASH_001,
    # The "latest" alias serves the same model as its pinned version.
    replace(_FLASH_001, name="models/gemini-1.5-flash", display_name="Gemini 1.5 Flash"),
)

_BY_NAME = {m.name: m for m in BASE_MODELS}

DEFAULT_TUNING_BASE = "models/gemini-1.5-flash-001-tuning"


def find(name: str) -> BaseModel | None:
    """The base model called ``name`` (``models/...``; a bare id also works), or None."""
    if not name.startswith("models/"):
        name = "models/" + name
    return _BY_NAME.get(name)
