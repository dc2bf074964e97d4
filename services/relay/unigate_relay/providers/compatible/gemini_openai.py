"""The Gemini API's OpenAI-compatible endpoint (https://ai.google.dev/gemini-api/docs/openai,
One API's type 51): ``/v1beta/openai/chat/completions`` and ``/embeddings`` with the Gemini
API key as a Bearer token. Its errors are Google's, wrapped in a one-element list (a wrong key
is a 400 "API key not valid"); stream usage rides on the chunks. For Gemini's own protocol
use type 24."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=51,
    name="Gemini (OpenAI-compatible)",
    default_base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"),
)

CHANNEL = declare_spec(SPEC, key_hint="AIza...", key_pattern=r"^AIza", gen_ai_system="gemini")
