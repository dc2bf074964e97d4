"""Together AI (https://docs.together.ai/docs/openai-api-compatibility): paths under ``/v1``
(chat, completions, embeddings, rerank, images). A stream reports usage on the chunk carrying
``finish_reason``, asked or not (the chunks mlflow/mlflow#11557 records). Errors are
OpenAI-shaped with an ``id`` beside ``error``; a wrong key is 401 ``invalid_api_key``.
Only the ``*-Vision-*`` models take images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

VISION = "meta-llama/Llama-3.2-11B-Vision-Instruct-Turbo"

PROFILE = Profile(
    name="together",
    prefixes=("/v1",),
    endpoints=frozenset(
        {
            "/chat/completions",
            "/completions",
            "/embeddings",
            "/rerank",
            "/images/generations",
            "/models",
        }
    ),
    models={
        "/chat/completions": (
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "Qwen/Qwen2.5-72B-Instruct-Turbo",
            VISION,
        ),
        "/completions": ("meta-llama/Llama-3.3-70B-Instruct-Turbo",),
        "/embeddings": ("BAAI/bge-large-en-v1.5",),
        "/rerank": ("Salesforce/Llama-Rank-V1",),
        "/images/generations": ("black-forest-labs/FLUX.1-schnell",),
    },
    render_error=openai_shape(
        codes={"auth": "invalid_api_key", "model_not_found": "model_not_found"},
        top={"id": "sim-request"},
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "Invalid API key provided. You can find your API key at "
        "https://api.together.xyz/settings/api-keys.",
        "model_not_found": "Unable to access model {model}. Please visit "
        "https://api.together.ai/models to view the list of supported models.",
        "invalid_request": "{message}",
        "image_unsupported": "Model {model} does not support image input",
    },
    vision_models=frozenset({VISION}),
    stream_usage="last_chunk",
)
