"""Channel configs (with their secrets) fetched from auth, cached per config version."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from unigate.keys import key_fingerprint
from unigate.v1 import auth_pb2, auth_pb2_grpc


class ChannelNotFound(LookupError):
    pass


class ChannelConfigs:
    def __init__(self, auth: auth_pb2_grpc.AuthServiceStub) -> None:
        self._auth = auth
        self._cache: dict[int, auth_pb2.Channel] = {}
        # Each channel's keys with their fingerprints, and where its rotation stands.
        self._keys: dict[int, list[tuple[str, str]]] = {}
        self._turn: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, channel_id: int, version: int) -> auth_pb2.Channel:
        ch = self._cache.get(channel_id)
        if ch is not None and ch.config_version >= version:
            return ch
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            ch = self._cache.get(channel_id)
            if ch is not None and ch.config_version >= version:
                return ch
            try:
                ch = await self._auth.GetChannel(
                    auth_pb2.GetChannelRequest(channel_id=channel_id),
                    timeout=5,
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise ChannelNotFound(channel_id) from exc
                raise
            self._cache[channel_id] = ch
            self._keys[channel_id] = [(k, key_fingerprint(k)) for k in ch.keys] or [("", "")]
            return ch

    def next_key(
        self, channel_id: int, cooling: Callable[[str], bool] = lambda _fp: False
    ) -> tuple[str, str]:
        """(key, fingerprint): round-robin over the channel's keys, passing over those
        cooling down (``cooling(fingerprint)``) unless every key is."""
        keys = self._keys[channel_id]
        start = self._turn.get(channel_id, 0)
        for step in range(len(keys)):
            i = (start + step) % len(keys)
            if not cooling(keys[i][1]):
                self._turn[channel_id] = i + 1
                return keys[i]
        self._turn[channel_id] = start + 1
        return keys[start % len(keys)]

    def key_count(self, channel_id: int) -> int:
        return len(self._keys.get(channel_id, ()))

    def key_named(self, channel_id: int, fingerprint: str) -> str | None:
        """The channel's key with this fingerprint (a batch's, pinned to its workspace), or
        None when the channel no longer has it."""
        return next((k for k, fp in self._keys[channel_id] if fp == fingerprint), None)
