"""Whether a key restricted to subnets may be used from a client address: one check for auth
and for a gateway serving a request from a spare reservation."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_allowed(client_ip: str, subnets: Iterable[IPNetwork]) -> bool:
    """True when ``client_ip`` is in one of ``subnets`` (an unparsable address never is)."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(ip in net for net in subnets)
