"""What a provider package declares about itself, for the rest of unigate.

The relay owns the provider facts; auth (routing, balances), the console (channel form) and
telemetry (``gen_ai.system``) read them from ``libs/unigate/provider_catalog.json``, which
``make providers`` generates from these declarations (:mod:`unigate_relay.providers.catalog`)
so that no service imports the relay. Pure data: nothing here calls a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# A balance API is declared in the catalog reader's own terms: ``kind`` names one of auth's
# answer shapes (``unigate_auth.admin.balances.PARSERS``).
from unigate.provider_facts import BalanceApi

__all__ = ["BalanceApi", "ChannelDeclaration", "ProviderPackage", "declare_spec"]

if TYPE_CHECKING:
    from unigate_relay.providers.base import Provider
    from unigate_relay.providers.compatible.spec import CompatibleSpec


@dataclass(frozen=True, slots=True)
class ChannelDeclaration:
    """One channel type (One API's number) a provider package serves."""

    id: int
    name: str
    # Used when a channel's base URL is empty ("" = the channel must give one, unless
    # ``base_url_hint`` says how the relay derives it).
    base_url: str = ""
    # The URL the relay builds from the channel's config when the base URL is empty, as the
    # console shows it ("https://bedrock-runtime.{region}.amazonaws.com"); never called as is.
    base_url_hint: str = ""
    # The console's key field: the format a key of this type has (its placeholder) and a
    # loose check it warns about, never blocks on (JavaScript RegExp source).
    key_hint: str = "API key"
    key_pattern: str = ""
    # The key is several values joined with "|", in this order.
    key_parts: tuple[str, ...] = ()
    # The key is one JSON object holding at least these fields (a service-account file); the
    # console checks them and stores the object on one line (a channel's keys are one a line).
    key_json_fields: tuple[str, ...] = ()
    # What the channel's config JSON may hold, shown under the config field.
    config_hint: str = ""
    # Its provider is called over WebSocket (its base URL may be ws:// or wss://).
    websocket: bool = False
    balance: BalanceApi | None = None
    # gen_ai.system (OpenTelemetry GenAI conventions) where they name one; "" = the first
    # word of the name, lower-cased.
    gen_ai_system: str = ""
    models: tuple[str, ...] = ()
    # An internal routing variant (id >= 1000) of another type, chosen by the channel's
    # config ``{"protocol": ...}``: (the One API type, the protocol).
    variant_of: tuple[int, str] | None = None

    @property
    def system(self) -> str:
        return self.gen_ai_system or self.name.split()[0].lower()


def declare_spec(
    spec: CompatibleSpec,
    *,
    key_hint: str = "API key",
    key_pattern: str = "",
    config_hint: str = "",
    balance: BalanceApi | None = None,
    gen_ai_system: str = "",
) -> ChannelDeclaration:
    """The declaration of an OpenAI-compatible type: its id, name, default base URL and
    models are its spec's; the rest is what only the console, balances and telemetry need."""
    return ChannelDeclaration(
        id=spec.channel_type,
        name=spec.name,
        base_url=spec.default_base_url,
        key_hint=key_hint,
        key_pattern=key_pattern,
        config_hint=config_hint,
        balance=balance,
        gen_ai_system=gen_ai_system,
        models=spec.default_models,
    )


@dataclass(frozen=True, slots=True)
class ProviderPackage:
    """One registry entry: a provider family's adapter and the channel types it declares."""

    provider: type[Provider]
    channels: tuple[ChannelDeclaration, ...]

    @property
    def family(self) -> str:
        return self.provider.family
