"""Mistral (https://docs.mistral.ai/api/): OpenAI-style API under ``/v1``. It validates
bodies strictly (unknown fields are 422 ``extra_forbidden``) and rejects ``stream_options``
(TabbyML/tabby#4082); its streams report usage on the last chunk without being asked."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=28,
    name="Mistral",
    default_base_url="https://api.mistral.ai/v1",
    endpoints=CHAT_AND_EMBEDDINGS,
    drop_fields=frozenset({"stream_options"}),
    default_models=(
        "mistral-large-latest",
        "mistral-small-latest",
        "open-mistral-nemo",
        "codestral-latest",
        "mistral-embed",
    ),
)

CHANNEL = declare_spec(
    SPEC,
    gen_ai_system="mistral_ai",
)
