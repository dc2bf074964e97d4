"""MiniMax (One API's type 27): its OpenAI-compatible API, ``https://api.minimax.io/v1``
(China: ``https://api.minimaxi.com/v1``); errors ``{"type": "error", "error": {...}}``, a
wrong key 401; a stream's finishing chunk carries the usage. (One API posted to MiniMax's
older ``/v1/text/chatcompletion_v2``; a migrated channel needs its base URL to end in
``/v1``.)"""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=27,
    name="MiniMax",
    default_base_url="https://api.minimax.io/v1",
    default_models=("MiniMax-M2", "MiniMax-M1", "MiniMax-Text-01"),
)

CHANNEL = declare_spec(SPEC, gen_ai_system="minimax")
