"""NATS and JetStream: connection, the usage stream, and config-change broadcasts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from unigate.namespace import Namespace

log = logging.getLogger(__name__)

# JetStream drops a second publish with the same Nats-Msg-Id inside this window.
DUPLICATE_WINDOW_SECONDS = 600.0


async def connect(url: str, name: str) -> NATS:
    client = NATS()

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        # Also called by our own drain/close at shutdown: only a lost connection is news.
        if client.is_closed:
            log.info("nats connection closed")
        else:
            log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    # nats-py annotates the wait as int seconds but sleeps on any number: half a second.
    wait: Any = 0.5
    await client.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=wait,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return client


async def ensure_usage_stream(js: JetStreamContext, ns: Namespace, *, replicas: int = 1) -> None:
    """Create the usage stream if it does not exist yet (idempotent, safe to race)."""
    config = StreamConfig(
        name=ns.usage_stream,
        subjects=[ns.usage_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=7 * 24 * 3600.0,
    )
    try:
        await js.stream_info(ns.usage_stream)
    except NotFoundError:
        await js.add_stream(config)


ConfigHandler = Callable[[dict[str, object]], Awaitable[None]]


async def publish_config_change(nc: NATS, ns: Namespace, kind: str, ids: list[int]) -> None:
    """Tell every service that records of ``kind`` changed (e.g. "token", "user", "channel")."""
    await nc.publish(ns.config_subject, orjson.dumps({"kind": kind, "ids": ids}))
    await nc.flush()


async def subscribe_config_changes(nc: NATS, ns: Namespace, handler: ConfigHandler) -> None:
    async def on_msg(msg: Msg) -> None:
        try:
            change = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            log.warning("ignoring malformed config change")
            return
        await handler(change)

    await nc.subscribe(ns.config_subject, cb=on_msg)
