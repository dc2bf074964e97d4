from __future__ import annotations

from unigate.settings import parse_relay_addrs, relay_for


def test_relay_addresses_by_family_with_a_catch_all() -> None:
    relays = parse_relay_addrs("openai=10.0.0.5:50061, *=relay-all:50061")
    assert relays == {"openai": "10.0.0.5:50061", "*": "relay-all:50061"}
    assert relay_for(relays, "openai") == "10.0.0.5:50061"
    assert relay_for(relays, "anthropic") == "relay-all:50061"
    assert relay_for(parse_relay_addrs("openai=a:1"), "anthropic") is None
