"""Channel configs (with their secrets) fetched from auth, cached per config version."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from unigate.v1 import auth_pb2, auth_pb2_grpc


class ChannelNotFound(LookupError):
    pass


class ChannelConfigs:
    def __init__(self, auth: auth_pb2_grpc.AuthServiceStub) -> None:
        self._auth = auth
        self._cache: dict[int, auth_pb2.Channel] = {}
        self._rotation: dict[int, itertools.cycle[str]] = {}
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
            self._rotation[channel_id] = itertools.cycle(list(ch.keys) or [""])
            return ch

    def next_key(self, channel_id: int) -> str:
        """Round-robin over the channel's keys."""
        return next(self._rotation[channel_id])
