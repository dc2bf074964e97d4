"""What the console's channel form needs to know per channel type: the key's format, the
default base URL (or how the relay derives it from the config) and the type's models.

Every fact comes from the provider's own declaration in the relay
(``unigate_relay.providers.*.declaration``), read through ``unigate.channel_types`` (the
generated provider catalog), so the form shows the base URL the relay really uses when a
channel leaves it empty. Multi-part keys are joined with ``|``.
"""

from __future__ import annotations

from typing import Any

from unigate.channel_types import CHANNEL_TYPES


def channel_forms() -> list[dict[str, Any]]:
    """Every channel type a channel can be created with, with its form hints.

    Internal routing variants (ids >= 1000, chosen by a channel's config, not by its type)
    are left out: One API clients never send them.
    """
    return [
        {
            "id": t.id,
            "name": t.name,
            "family": t.family,
            "key_hint": t.key_hint,
            "key_pattern": t.key_pattern,
            "base_url": t.base_url,
            "base_url_hint": t.base_url_hint,
            "key_parts": list(t.key_parts),
            "key_json_fields": list(t.key_json_fields),
            "config_hint": t.config_hint,
            # What "Fill models" puts in the form: the models the relay declares for the type.
            "models": list(t.models),
        }
        for t in sorted(CHANNEL_TYPES.values(), key=lambda t: t.id)
        if t.id < 1000
    ]
