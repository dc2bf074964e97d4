"""One trace per client request, end to end: a stack of its own exports OTLP to a receiver in
this process, and the spans of gateway, auth, relay and billing must form one trace per
request, carry the GenAI attributes, and hold no key or prompt."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats
import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from redis.asyncio import Redis

from tests import admin_writes
from tests.conftest import NATS_URL
from tests.e2e.conftest import SIM_KEY
from unigate_cli.devstack import Stack, StackConfig, StackPorts, free_port

SpanKind = trace_pb2.Span.SpanKind


def value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


@dataclass(frozen=True)
class Received:
    service: str
    span: trace_pb2.Span

    @property
    def attrs(self) -> dict[str, Any]:
        return {kv.key: value(kv.value) for kv in self.span.attributes}

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    def every_text(self) -> str:
        """Everything a span says that could leak: its name, attributes, events and links."""
        parts = [self.span.name, repr(self.attrs)]
        for ev in self.span.events:
            parts += [ev.name, repr({kv.key: value(kv.value) for kv in ev.attributes})]
        for link in self.span.links:
            parts.append(repr({kv.key: value(kv.value) for kv in link.attributes}))
        return "\n".join(parts)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A minimal OTLP/gRPC trace collector that keeps what it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Received] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        got = []
        for rs in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                got += [Received(str(resource.get("service.name")), s) for s in ss.spans]
        with self._lock:
            self._spans += got
        return trace_service_pb2.ExportTraceServiceResponse()

    @property
    def spans(self) -> list[Received]:
        with self._lock:
            return list(self._spans)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    rec = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield rec, port
    server.stop(grace=None)


@pytest.fixture(scope="module")
async def traced_stack(
    database: str,
    namespace: str,
    secret_key: str,
    log_dir: Path,
    redis: Redis,
    receiver: tuple[Receiver, int],
) -> AsyncIterator[Stack]:
    # A namespace of its own: billing here must be the one consuming these events (the
    # session stack's billing, untraced, shares the database but not the stream).
    ns = namespace + "tr"
    stack = Stack(
        StackConfig(
            sql_dsn=database,
            namespace=ns,
            secret_key=secret_key,
            ports=StackPorts.free(),
            simulator=None,
            log_dir=log_dir / "tracing",
            extra_env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "CHANNEL_TEST_FREQUENCY": "0",
            },
        )
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        nc = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(f"{ns.upper()}_USAGE")
        finally:
            await nc.close()
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*", count=1000)]
        if keys:
            await redis.delete(*keys)


def one(spans: list[Received], what: str, **match: Any) -> Received:
    found = [s for s in spans if all(s.attrs.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{what}: expected one span matching {match}, got {len(found)}"
    return found[0]


async def trace_of(rec: Receiver, request_id: str, within: float = 20.0) -> list[Received]:
    """The spans of the request's trace, once every service (billing last) has reported."""
    deadline = time.monotonic() + within
    complete: list[Received] | None = None
    while True:
        spans = rec.spans
        roots = [s for s in spans if s.attrs.get("unigate.request_id") == request_id]
        if roots:
            trace = [s for s in spans if s.trace_id == roots[0].trace_id]
            if {"gateway", "auth", "relay", "billing"} <= {
                s.service.removeprefix("unigate-") for s in trace
            }:
                # Each service exports in batches: wait until a whole export interval (and
                # then some, on a loaded machine) brings nothing new.
                if complete is not None and len(complete) == len(trace):
                    return trace
                complete = trace
                await asyncio.sleep(1.0)
                continue
        if time.monotonic() > deadline:
            seen = sorted({(s.service, s.span.name) for s in spans})
            raise AssertionError(f"no complete trace for {request_id}; spans seen: {seen}")
        await asyncio.sleep(0.1)


def check_request_trace(
    rec: Receiver,
    spans: list[Received],
    request_id: str,
    *,
    channel_id: int,
    model: str,
    response_model: str,
    input_tokens: int,
    output_tokens: int,
) -> None:
    by_service: dict[str, list[Received]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    gateway, auth = by_service["unigate-gateway"], by_service["unigate-auth"]
    relay, billing = by_service["unigate-relay"], by_service["unigate-billing"]

    server = one(gateway, "gateway server span", **{"unigate.request_id": request_id})
    assert server.span.kind == SpanKind.SPAN_KIND_SERVER
    assert not server.span.parent_span_id, "the edge must start the trace"
    assert server.attrs["http.route"] == "/v1/chat/completions"
    assert server.attrs["http.response.status_code"] == 200

    def child(of: Received, among: list[Received], name: str) -> Received:
        found = [
            s for s in among if s.span.parent_span_id == of.span.span_id and s.span.name == name
        ]
        assert len(found) == 1, f"{name} under {of.span.name}: {[s.span.name for s in among]}"
        return found[0]

    authorize = child(server, gateway, "/unigate.v1.AuthService/Authorize")
    assert authorize.span.kind == SpanKind.SPAN_KIND_CLIENT
    auth_server = child(authorize, auth, "/unigate.v1.AuthService/Authorize")
    assert auth_server.span.kind == SpanKind.SPAN_KIND_SERVER

    attempt = child(server, gateway, f"attempt chat {model}")
    genai = {
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.response.model": response_model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "unigate.channel.id": channel_id,
        "unigate.retry": 0,
        "unigate.outcome": "success",
    }
    assert {k: attempt.attrs.get(k) for k in genai} == genai

    relay_client = [s for s in gateway if s.span.parent_span_id == attempt.span.span_id]
    assert len(relay_client) == 1, [s.span.name for s in relay_client]
    assert relay_client[0].span.name.startswith("/unigate.v1.RelayService/")
    relay_server = child(relay_client[0], relay, relay_client[0].span.name)
    upstream = child(relay_server, relay, f"chat {model}")
    assert upstream.span.kind == SpanKind.SPAN_KIND_CLIENT
    # The retry number reaches the relay as baggage, with the trace context.
    assert {k: upstream.attrs.get(k) for k in genai} == genai

    applied = one(billing, "billing's span for the event", **{"unigate.request_id": request_id})
    assert applied.span.parent_span_id == server.span.span_id
    assert applied.attrs["unigate.outcome"] == "applied"

    # Batches are linked, not parented: the publish span links to this request, billing's
    # batch span links to the publish span and holds the Postgres write.
    everything = rec.spans
    sends = [
        s
        for s in everything
        if s.span.kind == SpanKind.SPAN_KIND_PRODUCER
        and any(link.trace_id == server.span.trace_id for link in s.span.links)
    ]
    assert len(sends) == 1 and sends[0].service == "unigate-gateway"
    batch_span_id = applied.span.links[0].span_id
    batch = [s for s in everything if s.span.span_id == batch_span_id]
    assert len(batch) == 1 and batch[0].span.kind == SpanKind.SPAN_KIND_CONSUMER
    assert any(link.span_id == sends[0].span.span_id for link in batch[0].span.links)
    writes = [
        s
        for s in everything
        if s.span.parent_span_id == batch_span_id and s.attrs.get("db.system.name") == "postgresql"
    ]
    assert len(writes) == 1


async def served_by(pg: asyncpg.Pool, request_id: str) -> int:
    """The channel the ledger says served the request (the session database may hold other
    channels for the same model)."""
    channel: int = await pg.fetchval(
        "SELECT channel_id FROM logs WHERE request_id = $1", request_id
    )
    return channel


@pytest.mark.usefixtures("channel_id")
async def test_one_trace_per_request(
    traced_stack: Stack,
    receiver: tuple[Receiver, int],
    pg: asyncpg.Pool,
) -> None:
    rec = receiver[0]
    # A user of its own: this stack shares the session's database but not its Redis keys, so
    # charging a user the session stack has cached (user 1) would leave that cache above the
    # balance of record, which the session's audit rightly reports as a drift.
    user_id = await admin_writes.create_user(
        pg, username=f"tracing-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex, quota=10**9
    )
    token = await admin_writes.create_token(
        pg, user_id=user_id, name="tracing", unlimited_quota=True
    )
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=traced_stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    prompt = f"a private prompt {uuid.uuid4().hex}"
    model = "gpt-4o-mini"

    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    resp = raw.parse()
    rid = raw.headers["x-request-id"]
    assert resp.usage is not None
    spans = await trace_of(rec, rid)
    check_request_trace(
        rec,
        spans,
        rid,
        channel_id=await served_by(pg, rid),
        model=model,
        response_model=resp.model,
        input_tokens=resp.usage.prompt_tokens,
        output_tokens=resp.usage.completion_tokens,
    )

    async with client.chat.completions.with_streaming_response.create(
        model=model,
        messages=[{"role": "user", "content": prompt + " streamed"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as streamed:
        stream_rid = streamed.headers["x-request-id"]
        chunks = [c async for c in await streamed.parse()]
    usage = chunks[-1].usage
    assert usage is not None
    stream_spans = await trace_of(rec, stream_rid)
    assert stream_spans[0].trace_id != spans[0].trace_id
    check_request_trace(
        rec,
        stream_spans,
        stream_rid,
        channel_id=await served_by(pg, stream_rid),
        model=model,
        response_model=chunks[0].model,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )

    # Nothing secret anywhere, in any span any service sent (not only these two traces).
    everything = rec.spans
    assert len(everything) > 20
    for s in everything:
        text = s.every_text()
        for secret in (token.key, token.key.removeprefix("sk-"), SIM_KEY, prompt):
            assert secret not in text, f"{s.service} span {s.span.name!r} leaks a secret"
