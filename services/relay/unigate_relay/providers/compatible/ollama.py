"""Ollama (https://github.com/ollama/ollama/blob/main/docs/openai.md): OpenAI compatibility
under ``/v1`` of the local server; no API key is checked (a placeholder is sent)."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=30,
    name="Ollama",
    default_base_url="http://localhost:11434/v1",
    endpoints=CHAT_AND_EMBEDDINGS | {"completions"},
    default_models=("llama3.2", "qwen2.5", "nomic-embed-text"),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="any value (Ollama has no keys)",
)
