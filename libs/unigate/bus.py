"""NATS and JetStream: connection, the usage stream, and config-change broadcasts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import Placement, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError

from unigate.namespace import Namespace
from unigate.retrying import retry_within
from unigate.settings import CommonSettings

log = logging.getLogger(__name__)

# JetStream drops a second publish with the same Nats-Msg-Id inside this window.
DUPLICATE_WINDOW_SECONDS = 600.0


def server_urls(url: str) -> list[str]:
    """``NATS_URL`` as a list of servers: one URL, or a cluster's as ``nats://a:4222,nats://b:4222``.

    The client tries them in turn at start and on every reconnect, and also learns the
    cluster's other members from each server's INFO, so one reachable seed is enough to start
    and a dead node is left for a living one without a restart."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    if not urls:
        raise ValueError("NATS_URL names no server")
    return urls


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
        servers=server_urls(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=wait,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return client


@dataclass(frozen=True)
class StreamPlacement:
    """Where JetStream keeps the usage stream: how many copies, in which cluster, on servers
    with which tags (a NATS super-cluster places by these)."""

    replicas: int = 1
    cluster: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> StreamPlacement:
        tags = tuple(t.strip() for t in settings.usage_stream_tags.split(",") if t.strip())
        return cls(settings.usage_stream_replicas, settings.usage_stream_cluster.strip(), tags)

    def placement(self) -> Placement | None:
        if not self.cluster and not self.tags:
            return None
        return Placement(cluster=self.cluster or None, tags=list(self.tags) or None)


# JetStream's answer when too few servers are known to hold the copies asked for: a cluster
# whose members are still joining (or a lost one not yet back) says so for a moment.
_NO_PEERS_FOR_PLACEMENT = 10005


async def ensure_usage_stream(
    js: JetStreamContext,
    ns: Namespace,
    where: StreamPlacement | None = None,
    *,
    within: float = 120.0,
) -> None:
    """Create the usage stream if it does not exist yet (idempotent, safe to race); an
    existing one whose replicas or placement differ from ``where`` is updated to it (JetStream
    adds or removes copies, or moves the stream, without losing a message).

    Services start beside the NATS cluster (compose, a Kubernetes rollout): until enough of its
    members have joined, JetStream answers "no suitable peers for placement" or has no meta
    leader (503, or no answer). Those are waited out for ``within`` seconds, with a warning
    each time, before the error is raised; any other error is raised at once."""
    placement = where or StreamPlacement()
    await retry_within(
        lambda: _ensure_usage_stream_once(js, ns, placement),
        transient=_cluster_still_forming,
        within=within,
        what=f"usage stream {ns.usage_stream} not placed yet",
        log=log,
    )


def _cluster_still_forming(exc: Exception) -> bool:
    if not isinstance(exc, nats.errors.TimeoutError | APIError):
        return False
    if isinstance(exc, APIError) and not isinstance(exc, ServiceUnavailableError):
        return exc.err_code == _NO_PEERS_FOR_PLACEMENT
    return True  # no meta leader yet: 503, or no answer at all


async def _ensure_usage_stream_once(
    js: JetStreamContext, ns: Namespace, where: StreamPlacement
) -> None:
    config = StreamConfig(
        name=ns.usage_stream,
        subjects=[ns.usage_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=where.replicas,
        placement=where.placement(),
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=7 * 24 * 3600.0,
    )
    try:
        info = await js.stream_info(ns.usage_stream)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError as exc:
            if exc.err_code == _NO_PEERS_FOR_PLACEMENT:
                raise
            # Another process created it between the two calls (it errs "name already in
            # use" when their configurations differ in any detail; identical ones succeed).
            info = await js.stream_info(ns.usage_stream)
    have = info.config
    want_placement = where.placement()
    if have.num_replicas != where.replicas or (
        want_placement is not None and _placement_differs(have.placement, want_placement)
    ):
        log.warning(
            "usage stream %s: replicas %s -> %s, placement %s -> %s",
            ns.usage_stream,
            have.num_replicas,
            where.replicas,
            have.placement,
            want_placement,
        )
        have.num_replicas = where.replicas
        if want_placement is not None:
            have.placement = want_placement
        await js.update_stream(have)


def _placement_differs(have: Placement | None, want: Placement) -> bool:
    if have is None:
        return True
    return (have.cluster or None) != want.cluster or sorted(have.tags or []) != sorted(
        want.tags or []
    )


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


async def step_down_consumer(nc: NATS, stream: str, consumer: str) -> None:
    """Ask the leader of a replicated consumer to hand its leadership to another replica.

    nats-py has no call for it; this is the JetStream API's own request, answered with
    ``{"success": true}`` or an error (a consumer that is not replicated has no one to hand
    over to). Raises ``nats.js.errors.APIError`` (or a timeout) when it was not done."""
    reply = await nc.request(
        f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}", b"", timeout=5.0
    )
    answer = orjson.loads(reply.data)
    if "error" in answer:
        raise APIError.from_error(answer["error"])
