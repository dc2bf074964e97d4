"""A gRPC client channel that follows its TLS files: when they change, new calls go over a new
channel made from them, and the old one is closed once its calls have had time to finish.

gRPC's Python client credentials are fixed when a channel is made (there is no client-side
certificate reloader as the server has), so rotation is done one level up. The files are
looked at (a stat of three) at most every ``recheck_every`` seconds, on a call; a call costs
one more Python frame and a clock read. Multiplexed streams opened before a rotation live on
until grpc_mux replaces them (30 s); unary calls and streams in flight keep their connection
until ``retire_after`` seconds after the rotation, when the old channel is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

import grpc

from unigate.certs import TlsFiles, key_matches

log = logging.getLogger(__name__)


def file_stamp(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    """What changes when any of the files is replaced or rewritten."""
    return tuple(
        (s.st_mtime_ns, s.st_size) for s in map(os.stat, (files.ca, files.cert, files.key))
    )


class _Method:
    """A stub's method: bound to the channel current at each call."""

    def __init__(
        self, owner: ReloadingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._args = args
        self._kwargs = kwargs
        self._generation = -1
        self._bound: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._owner.current()
        if self._bound is None or self._generation != self._owner.generation:
            self._bound = getattr(channel, self._kind)(*self._args, **self._kwargs)
            self._generation = self._owner.generation
        return self._bound(*args, **kwargs)


class ReloadingChannel(grpc.aio.Channel):
    def __init__(
        self,
        make: Callable[[TlsFiles], grpc.aio.Channel],
        files: TlsFiles,
        *,
        recheck_every: float = 5.0,
        retire_after: float = 900.0,
    ) -> None:
        self._make = make
        self._files = files
        self._recheck_every = recheck_every
        self._retire_after = retire_after
        self._stamp = file_stamp(files)
        self._channel = make(files)
        self._next_check = time.monotonic() + recheck_every
        self._retired: list[grpc.aio.Channel] = []
        self._closing: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.generation = 0

    def current(self) -> grpc.aio.Channel:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._recheck_every
            self._reload_if_changed()
        return self._channel

    def _reload_if_changed(self) -> None:
        try:
            stamp = file_stamp(self._files)
            if stamp == self._stamp:
                return
            _, cert, key = self._files.read()
            if not key_matches(cert, key):
                return  # caught between the key and its certificate: next time
            fresh = self._make(self._files)
        except (OSError, ValueError) as exc:
            log.warning("TLS files unreadable, keeping the current channel: %s", exc)
            return
        old, self._channel = self._channel, fresh
        self._stamp = stamp
        self.generation += 1
        self._retired.append(old)
        loop = asyncio.get_running_loop()
        self._closing.add(loop.call_later(self._retire_after, self._close_retired, old))
        log.info("TLS files changed (%s): new calls use a new channel", self._files.cert)

    def _close_retired(self, channel: grpc.aio.Channel) -> None:
        if channel in self._retired:
            self._retired.remove(channel)
            task = asyncio.ensure_future(channel.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # grpc.aio.Channel

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        for handle in self._closing:
            handle.cancel()
        self._closing.clear()
        for channel in [*self._retired, self._channel]:
            await channel.close(grace)
        self._retired.clear()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    def _method(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Method:
        return _Method(self, kind, args, kwargs)

    def unary_unary(self, *args: Any, **kwargs: Any) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return cast(
            "grpc.aio.UnaryUnaryMultiCallable[Any, Any]", self._method("unary_unary", args, kwargs)
        )

    def unary_stream(
        self, *args: Any, **kwargs: Any
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        return cast(
            "grpc.aio.UnaryStreamMultiCallable[Any, Any]",
            self._method("unary_stream", args, kwargs),
        )

    def stream_unary(
        self, *args: Any, **kwargs: Any
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        return cast(
            "grpc.aio.StreamUnaryMultiCallable[Any, Any]",
            self._method("stream_unary", args, kwargs),
        )

    def stream_stream(
        self, *args: Any, **kwargs: Any
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        return cast(
            "grpc.aio.StreamStreamMultiCallable[Any, Any]",
            self._method("stream_stream", args, kwargs),
        )
