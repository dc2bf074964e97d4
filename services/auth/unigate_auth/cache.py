"""A small in-process TTL cache, cleared wholesale when a config change is broadcast."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, value = hit
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, ttl_seconds: float | None = None) -> None:
        if len(self._data) >= self._max:
            self._data.clear()
        self._data[key] = (time.monotonic() + (ttl_seconds or self._ttl), value)

    def clear(self) -> None:
        self._data.clear()
