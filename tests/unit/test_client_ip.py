from __future__ import annotations

from unigate_gateway.client_ip import client_ip, parse_networks

TRUSTED = parse_networks("10.0.0.0/8, ::1/128")


def test_header_ignored_from_untrusted_peer() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"


def test_first_untrusted_hop_from_the_right() -> None:
    assert client_ip("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5", TRUSTED) == "198.51.100.7"


def test_ipv6_proxy_and_missing_header() -> None:
    assert client_ip("::1", "2001:db8::1", TRUSTED) == "2001:db8::1"
    assert client_ip("::1", None, TRUSTED) == "::1"


def test_all_hops_trusted_gives_leftmost() -> None:
    assert client_ip("10.0.0.2", "10.1.1.1, 10.0.0.3", TRUSTED) == "10.1.1.1"
