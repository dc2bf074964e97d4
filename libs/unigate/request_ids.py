"""Request ids: unique across gateways and restarts, and carrying the time the request arrived.

An id is 39 hex digits: the arrival time in milliseconds (11 digits, good until the year
2527), a random per-process prefix (16 digits) and a per-process counter (12 digits). No
system call per request (uuid4 reads the OS random source every time).

The time is there for the ledger: ``logs`` is partitioned by time, and every writer of a
request's row (billing's consumer from the gateway's event, the sweeper from the reservation)
must put it in the same partition, or the unique ``(request_id, type, created_at)`` would not
catch the second writer. Both read the time from the id itself (``arrived_ms``). Ids made
before this format (32 digits, no time) are told apart by their length.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time

_ID_PREFIX = os.urandom(8).hex()
_counter = itertools.count(1)
_TIME_DIGITS = 11
_LENGTH = _TIME_DIGITS + len(_ID_PREFIX) + 12
_HEX = frozenset("0123456789abcdef")


def new_request_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:0{_TIME_DIGITS}x}{_ID_PREFIX}{next(_counter):012x}"


def arrived_ms(request_id: str) -> int | None:
    """When the request carrying this id arrived, or None for an id not made here."""
    if len(request_id) != _LENGTH or not _HEX.issuperset(request_id):
        return None
    return int(request_id[:_TIME_DIGITS], 16)


def issuer(request_id: str) -> str | None:
    """The random prefix of the gateway process that made this id (which gateway served the
    request), or None for an id not made here."""
    if arrived_ms(request_id) is None:
        return None
    return request_id[_TIME_DIGITS : _TIME_DIGITS + len(_ID_PREFIX)]


def derived_request_id(arrived: int, *parts: str) -> str:
    """An id in the same format, made from ``parts`` rather than drawn: the same parts always
    give the same id, so whoever writes the row for them, however often, writes one row (a
    Message Batch's result: its batch id and ``custom_id``). ``arrived`` (ms) places the row
    in its day's partition, as a drawn id's time does."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return f"{arrived:0{_TIME_DIGITS}x}{digest[: _LENGTH - _TIME_DIGITS]}"
