"""What the OpenAI package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.compatible import CHANNELS as COMPATIBLE
from unigate_relay.providers.declaration import BalanceApi, ChannelDeclaration, declare_spec
from unigate_relay.providers.openai.adapter import spec_for

# OpenAI's legacy billing API (subscription, then usage), which One API reads for both types;
# the path is rooted at the host, so a base URL ending in /v1 is trimmed for it.
_LEGACY_BILLING = BalanceApi("openai", "/v1/dashboard/billing/subscription", strip_v1=True)

# OpenAI itself, "OpenAI-compatible" (the operator's base URL) and every provider of
# ``unigate_relay.providers.compatible``: the family serves them all.
CHANNELS: tuple[ChannelDeclaration, ...] = (
    declare_spec(
        spec_for(1),
        key_hint="sk-...",
        key_pattern=r"^sk-",
        balance=_LEGACY_BILLING,
        gen_ai_system="openai",
    ),
    declare_spec(
        spec_for(8), key_hint="API key of the OpenAI-compatible service", balance=_LEGACY_BILLING
    ),
    declare_spec(
        spec_for(50),
        key_hint="API key of the OpenAI-compatible service (base URL with its /v1)",
        balance=_LEGACY_BILLING,
    ),
    *COMPATIBLE,
)
