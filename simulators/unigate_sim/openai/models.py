"""The models the simulator knows: their listing metadata and their limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from unigate_sim.openai.errors import OpenAIError
from unigate_sim.openai.json_types import JSONObject

DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "gpt-3.5-turbo-instruct",
    "omni-moderation-latest",
    "text-moderation-latest",
    "dall-e-3",
    "dall-e-2",
    "gpt-image-1",
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "whisper-1",
    "gpt-4o-mini-transcribe",
    "rerank-english-v3.0",
)


#: What a model does, hence the endpoint that accepts it.
MODEL_KINDS: Final = (
    "chat",
    "embedding",
    "completion",
    "moderation",
    "image",
    "speech",
    "transcription",
    "rerank",
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the simulator knows about a model: its listing metadata and its limits."""

    created: int
    owned_by: str
    context_window: int
    max_output_tokens: int = 0
    #: Native vector size of an embedding model (0 for other kinds).
    embedding_dimensions: int = 0
    #: Whether the ``dimensions`` parameter may shorten the vectors (text-embedding-3-*).
    supports_dimensions: bool = False
    #: The endpoint family the model serves: one of :data:`MODEL_KINDS`.
    kind: str = "chat"

    @property
    def is_embedding(self) -> bool:
        """True for embedding models, which the chat endpoint refuses and vice versa."""
        return self.kind == "embedding"


_KNOWN_MODELS: Final[dict[str, ModelSpec]] = {
    "gpt-4o-mini": ModelSpec(1721172741, "system", 128_000, 16_384),
    "gpt-4o": ModelSpec(1715367049, "system", 128_000, 16_384),
    "gpt-3.5-turbo": ModelSpec(1677610602, "openai", 16_385, 4_096),
    "text-embedding-3-small": ModelSpec(1705948997, "system", 8_192, 0, 1536, True, "embedding"),
    "text-embedding-3-large": ModelSpec(1705953180, "system", 8_192, 0, 3072, True, "embedding"),
    "text-embedding-ada-002": ModelSpec(
        1671217299, "openai-internal", 8_192, 0, 1536, kind="embedding"
    ),
    "gpt-3.5-turbo-instruct": ModelSpec(1692901427, "system", 4_096, 4_096, kind="completion"),
    "omni-moderation-latest": ModelSpec(1731689265, "system", 32_768, kind="moderation"),
    "text-moderation-latest": ModelSpec(1677610602, "openai-internal", 32_768, kind="moderation"),
    "dall-e-3": ModelSpec(1698785189, "system", 0, kind="image"),
    "dall-e-2": ModelSpec(1698798177, "system", 0, kind="image"),
    "gpt-image-1": ModelSpec(1745517030, "system", 0, kind="image"),
    "tts-1": ModelSpec(1681940951, "openai-internal", 0, kind="speech"),
    "tts-1-hd": ModelSpec(1699046015, "system", 0, kind="speech"),
    "gpt-4o-mini-tts": ModelSpec(1742403959, "system", 2_000, kind="speech"),
    "whisper-1": ModelSpec(1677532384, "openai-internal", 0, kind="transcription"),
    "gpt-4o-mini-transcribe": ModelSpec(1742068596, "system", 16_000, kind="transcription"),
    "rerank-english-v3.0": ModelSpec(1711929600, "cohere", 4_096, kind="rerank"),
}


def model_spec(model_id: str) -> ModelSpec:
    """The spec of a model; ids the simulator does not know get generous defaults.

    Custom ids (``create_app(models=[...])``) are chat models unless they are named like
    OpenAI's embedding models (``text-embedding-*``).
    """
    known = _KNOWN_MODELS.get(model_id)
    if known is not None:
        return known
    if model_id.startswith("text-embedding-"):
        return ModelSpec(
            created=1_700_000_000,
            owned_by="system",
            context_window=8_192,
            embedding_dimensions=1536,
            supports_dimensions=model_id.startswith("text-embedding-3"),
            kind="embedding",
        )
    return ModelSpec(1_700_000_000, "system", 128_000, 16_384)


def resolve_model(model: str, models: Sequence[str]) -> ModelSpec:
    """The spec of a model a request names, or OpenAI's 404 when it is not served."""
    if model not in models:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    return model_spec(model)


def served_of_kind(models: Sequence[str], kind: str) -> list[str]:
    """The served models of one kind, in serving order (the "supported values" of errors)."""
    return [model for model in models if model_spec(model).kind == kind]


def model_object(model: str) -> JSONObject:
    """The ``model`` object that ``GET /v1/models`` lists and ``GET /v1/models/{id}`` answers."""
    spec = model_spec(model)
    return {"id": model, "object": "model", "created": spec.created, "owned_by": spec.owned_by}
