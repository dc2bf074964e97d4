"""Scale-out acceptance: nginx (deploy/nginx.conf, with its upstream pointed at this machine)
in front of two gateways, two relays balanced round-robin by every gateway, two billing
processes sharing the durable consumer, and one auth, under a steady load made with the
``openai`` SDK. Mid-load one gateway gets SIGTERM, one billing process SIGKILL, and one relay
a rolling restart (SIGTERM, then a new process on its address).

What must hold (see docs/architecture.md, "The life of one request" and the ledger rules):

* every request completed — a whole answer, or a whole stream (all of its text, its finish
  reason and its usage chunk) — or got a clean HTTP error before its first byte; none hangs,
  no stream stops half-way;
* streams in flight on the gateway that got SIGTERM finish (its drain), and it exits after
  flushing its usage events;
* the relay told to stop tells the gateways to move (GOAWAY on their multiplexed streams),
  finishes what it holds and exits cleanly; its successor takes traffic again;
* the ledger holds exactly one row per request a gateway published (every authorized
  request: each completed one, and each error a gateway answered after authorizing it), none
  for requests that never reached a gateway, and each token's used quota equals the sum of
  its rows, although the killed billing process held unacked batches.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsIndex

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, ThreadedServer
from tests.e2e.test_parallel_billing import (
    LedgerEnv,
    assert_rollups_match_ledger,
    ledger_env,
    stream_events,
    token_ledger,
    wait_drained,
)
from unigate.request_ids import issuer
from unigate_cli.devstack import free_port, ready_timeout
from unigate_sim.openai import create_app
from unigate_sim.openai.faults import Fault

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
REQUESTS = int(os.environ.get("SCALE_OUT_REQUESTS", "300"))
CONCURRENCY = 12
FAST_MODEL = "gpt-4o-mini"
# Served by a channel to an in-process simulator whose streams trickle (a frame every
# FRAME_DELAY seconds), so that streams are in flight when a gateway is told to stop.
SLOW_MODEL = "scale-out-slow"
FRAME_DELAY = 0.02
REQUEST_DEADLINE = 60.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


class Trickle(list[Fault]):
    """The simulator's fault queue, never empty: every request is served normally, streams a
    frame every FRAME_DELAY seconds."""

    def __bool__(self) -> bool:
        return True

    def pop(self, index: SupportsIndex = -1) -> Fault:
        return Fault(frame_delay=FRAME_DELAY)


class Process:
    """One more unigate process of the stack, with its own ports (env overrides)."""

    def __init__(self, env: LedgerEnv, name: str, module: str, ready_url: str, **over: str):
        assert env.stack.config.log_dir is not None
        self._args = (env, name, module, ready_url, over)
        self.name = name
        self.log_path = env.stack.config.log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**env.stack.config.env(), **over},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ready_url = ready_url

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or ready_timeout())
        while True:
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready: {self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def successor(self) -> Process:
        """The same process started again (same ports and settings), once this one exited."""
        env, name, module, ready_url, over = self._args
        self._log.close()
        return Process(env, name, module, ready_url, **over)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Nginx:
    """nginx from deploy/nginx.conf, balancing over local gateways; the only changes are the
    upstream servers, the listen port, and what cannot work outside Docker (its resolver)."""

    def __init__(self, binary: str, workdir: Path, gateway_ports: list[int]) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        text = NGINX_CONF.read_text()
        servers = "".join(f"server 127.0.0.1:{p};\n        " for p in gateway_ports)
        text, n = re.subn(r"server\s+gateway:\d+[^;]*;\s*", servers, text)
        assert n == 1, "deploy/nginx.conf has no `server gateway:PORT` line"
        text = re.sub(r"^\s*resolver(_timeout)?\s[^;]*;\s*$", "", text, flags=re.M)
        text, n = re.subn(r"listen\s+3000;", f"listen 127.0.0.1:{self.port};", text)
        assert n == 1
        temp = "".join(
            f"    {kind}_temp_path {workdir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = text.replace("http {\n", "http {\n" + temp, 1)
        text = text.replace("access_log /dev/stdout", f"access_log {workdir / 'access.log'}")
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(text)
        self.log_path = workdir / "nginx.out"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(workdir),
                "-e",
                str(workdir / "error.log"),
                "-c",
                str(self.conf),
                "-g",
                f"daemon off; pid {workdir / 'nginx.pid'};",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: " + self.log_path.read_text(errors="replace")
                    ) from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # nginx's graceful shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Topology:
    env: LedgerEnv
    nginx: Nginx
    gateway1_url: str
    gateway2: Process
    gateway2_url: str
    billing2: Process
    relay2: Process
    relay_metrics: list[str]
    extras: list[Process] = field(default_factory=list)


@pytest.fixture(scope="module")
def nginx_path() -> str:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx-light)")
    return binary


@pytest.fixture(scope="module")
def slow_simulator() -> Iterator[ThreadedServer]:
    app = create_app({SIM_KEY})
    app.state.faults = Trickle()
    server = ThreadedServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def topology(
    tmp_path_factory: pytest.TempPathFactory, nginx_path: str, slow_simulator: ThreadedServer
) -> AsyncIterator[Topology]:
    relay_ports = [free_port(), free_port()]
    relays = ",".join(f"127.0.0.1:{p}" for p in relay_ports)
    log_dir = tmp_path_factory.mktemp("scale-out")
    async with ledger_env(
        log_dir,
        RELAY_LISTEN=f"127.0.0.1:{relay_ports[0]}",
        # Every gateway spreads its calls over both relays (gRPC round-robin).
        RELAY_ADDRS=f"*=ipv4:{relays}",
        # The killed billing process's unacked batches come back after this long.
        BILLING_ACK_WAIT="3",
        SHUTDOWN_DRAIN_TIMEOUT="30",
    ) as env:
        await admin_writes.create_channel(
            env.pg,
            secret_key=env.stack.config.secret_key,
            type=1,
            name="trickling simulator",
            key=SIM_KEY,
            base_url=slow_simulator.url,
            models=SLOW_MODEL,
            model_mapping={SLOW_MODEL: FAST_MODEL},
        )
        relay_ops, billing_ops, gateway_port = free_port(), free_port(), free_port()
        relay2 = Process(
            env,
            "relay-2",
            "unigate_relay",
            f"http://127.0.0.1:{relay_ops}/readyz",
            RELAY_LISTEN=f"127.0.0.1:{relay_ports[1]}",
            RELAY_OPS_PORT=str(relay_ops),
        )
        billing2 = Process(
            env,
            "billing-2",
            "unigate_billing",
            f"http://127.0.0.1:{billing_ops}/readyz",
            BILLING_LISTEN=f"127.0.0.1:{free_port()}",
            BILLING_OPS_PORT=str(billing_ops),
        )
        gateway2_url = f"http://127.0.0.1:{gateway_port}"
        gateway2 = Process(
            env,
            "gateway-2",
            "unigate_gateway",
            f"{gateway2_url}/readyz",
            PORT=str(gateway_port),
            GATEWAY_OPS_PORT=str(free_port()),
        )
        extras = [relay2, billing2, gateway2]
        nginx: Nginx | None = None
        try:
            for p in extras:
                await asyncio.to_thread(p.wait_ready)
            nginx = await asyncio.to_thread(
                Nginx,
                nginx_path,
                log_dir / "nginx",
                [env.stack.config.ports.gateway, gateway_port],
            )
            relay_metrics = [
                f"http://127.0.0.1:{port}/metrics"
                for port in (env.stack.config.ports.relay_ops, relay_ops)
            ]
            yield Topology(
                env,
                nginx,
                env.stack.gateway_url,
                gateway2,
                gateway2_url,
                billing2,
                relay2,
                relay_metrics,
                extras,
            )
        finally:
            if nginx is not None:
                await asyncio.to_thread(nginx.stop)
            for p in reversed(extras):
                await asyncio.to_thread(p.stop)


@dataclass
class Outcome:
    """How one request ended, seen from the client."""

    kind: str  # "ok" or "error"
    stream: bool
    request_id: str | None = None  # the gateway's (the ledger key), when a gateway answered
    status: int = 0
    detail: str = ""
    ended_at: float = 0.0
    text: str = ""


def gateway_id(headers: httpx.Headers) -> str | None:
    return headers.get("x-request-id")


def prefix(request_id: str) -> str:
    """Which gateway process made a request id (unigate.request_ids)."""
    made_by = issuer(request_id)
    assert made_by is not None, request_id
    return made_by


async def upstream_calls(metric_urls: list[str]) -> list[float]:
    """Provider calls each relay has made, by its /metrics."""
    async with httpx.AsyncClient(timeout=5) as http:
        pages = [(await http.get(url)).text for url in metric_urls]
    return [
        sum(
            s.value
            for f in text_string_to_metric_families(page)
            for s in f.samples
            if s.name == "unigate_relay_upstream_requests_total"
        )
        for page in pages
    ]


async def one_request(client: openai.AsyncOpenAI, i: int, stream: bool) -> Outcome:
    """One request; errors are only acceptable before the answer began."""
    text = f"request {i} " + " ".join(f"w{j}" for j in range(i % 7 + 3))
    messages: Any = [{"role": "user", "content": text}]
    expected = "Echo: " + text
    try:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model=FAST_MODEL, messages=messages
            )
            answer = raw.parse()
            content = answer.choices[0].message.content
            assert content == expected, f"half an answer: {content!r}"
            assert answer.usage is not None and answer.usage.completion_tokens > 0
            return Outcome("ok", False, gateway_id(raw.headers), 200, ended_at=time.monotonic())
        async with client.chat.completions.with_streaming_response.create(
            model=SLOW_MODEL,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            rid = gateway_id(response.headers)
            parts: list[str] = []
            finish, usage = None, None
            try:
                async for chunk in await response.parse():
                    for choice in chunk.choices:
                        parts.append(choice.delta.content or "")
                        finish = choice.finish_reason or finish
                    usage = chunk.usage or usage
            except (openai.APIError, httpx.HTTPError) as exc:
                raise AssertionError(f"stream {rid} broke after {parts!r}: {exc!r}") from exc
            got = "".join(parts)
            assert got == expected, f"half a stream {rid}: {got!r}"
            assert finish == "stop" and usage is not None, f"stream {rid} ended without its end"
            return Outcome("ok", True, rid, 200, ended_at=time.monotonic(), text=got)
    except openai.APIStatusError as exc:
        return Outcome(
            "error",
            stream,
            gateway_id(exc.response.headers),
            exc.status_code,
            exc.message[:200],
            time.monotonic(),
        )


async def test_load_survives_a_gateway_drain_and_a_billing_kill(topology: Topology) -> None:
    env = topology.env
    token = await env.new_token()
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=topology.nginx.url + "/v1", max_retries=0, timeout=30
    )
    direct2 = openai.AsyncOpenAI(
        api_key=token.key, base_url=topology.gateway2_url + "/v1", max_retries=0, timeout=30
    )
    # Gateway 2's request-id prefix, to tell which gateway served what.
    probe = await one_request(direct2, 0, stream=False)
    assert probe.kind == "ok" and probe.request_id
    g2 = prefix(probe.request_id)

    outcomes: list[Outcome] = [probe]
    started = 0
    sigterm_at = 0.0
    events = {"sigterm": REQUESTS // 3, "sigkill": REQUESTS // 2, "relay": REQUESTS * 2 // 3}
    drain_streams: list[asyncio.Task[Outcome]] = []
    relay_calls: list[float] = []
    restarts: list[asyncio.Task[None]] = []

    async def restart_relay2() -> None:
        # Both relays took a share of the calls so far (gRPC round-robin in every gateway).
        relay_calls.extend(await upstream_calls(topology.relay_metrics))
        old = topology.relay2
        old.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(old.proc.wait, 40)
        assert code == 0, old.tail()
        assert "relay draining" in old.tail()
        topology.relay2 = old.successor()
        topology.extras.append(topology.relay2)
        await asyncio.to_thread(topology.relay2.wait_ready)

    async def stop_gateway2() -> None:
        nonlocal sigterm_at
        # Streams that are surely in flight on gateway 2 when it is told to stop: each has
        # received its first chunk, and has well over a second to go.
        long_text = " ".join(f"x{j}" for j in range(80))

        async def long_stream(first: asyncio.Event) -> Outcome:
            messages: Any = [{"role": "user", "content": long_text}]
            async with direct2.chat.completions.with_streaming_response.create(
                model=SLOW_MODEL,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            ) as response:
                rid = gateway_id(response.headers)
                parts, usage = [], None
                async for chunk in await response.parse():
                    first.set()
                    parts += [c.delta.content or "" for c in chunk.choices]
                    usage = chunk.usage or usage
                assert "".join(parts) == "Echo: " + long_text, "a draining stream was cut"
                assert usage is not None
                return Outcome("ok", True, rid, 200, ended_at=time.monotonic())

        firsts = [asyncio.Event() for _ in range(3)]
        drain_streams.extend(asyncio.create_task(long_stream(f)) for f in firsts)
        await asyncio.wait_for(asyncio.gather(*(f.wait() for f in firsts)), 10)
        topology.gateway2.proc.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()

    async def worker() -> None:
        nonlocal started
        while started < REQUESTS:
            i = started = started + 1
            if i == events["sigterm"]:
                await stop_gateway2()
            if i == events["sigkill"]:
                topology.billing2.proc.kill()
            if i == events["relay"]:
                restarts.append(asyncio.create_task(restart_relay2()))
            try:
                outcome = await asyncio.wait_for(
                    one_request(client, i, stream=i % 3 == 0), REQUEST_DEADLINE
                )
            except TimeoutError:
                raise AssertionError(f"request {i} hung") from None
            outcomes.append(outcome)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    drained = await asyncio.wait_for(asyncio.gather(*drain_streams), REQUEST_DEADLINE)
    outcomes += drained
    await asyncio.wait_for(asyncio.gather(*restarts), REQUEST_DEADLINE)
    assert restarts, "the relay was never restarted"
    # The successor serves: every gateway reaches it again (a stream's call is placed afresh
    # by round-robin each time).
    for i in range(20):
        outcomes.append(await one_request(client, REQUESTS + i, stream=True))
    assert (await upstream_calls(topology.relay_metrics))[1] > 0, "the new relay got no calls"

    # Gateway 2 finished its streams after SIGTERM, then exited cleanly.
    assert sigterm_at and all(o.ended_at > sigterm_at for o in drained)
    assert all(o.request_id and prefix(o.request_id) == g2 for o in drained)
    code = await asyncio.to_thread(topology.gateway2.proc.wait, 40)
    # uvicorn re-raises the signal it caught once its shutdown is complete, so a clean exit
    # after SIGTERM is "terminated by SIGTERM", with the whole shutdown in the log.
    log = topology.gateway2.tail()
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete." in log and "not published" not in log
    assert topology.billing2.proc.poll() == -signal.SIGKILL

    ok = [o for o in outcomes if o.kind == "ok"]
    errors = [o for o in outcomes if o.kind == "error"]
    # Clean errors only: an HTTP status, from nginx (a connection the stopping gateway closed
    # under it) or a gateway; rare, since nginx moves new connections to the other gateway.
    assert all(o.status in (502, 503, 504) for o in errors), errors
    assert len(errors) <= max(3, REQUESTS // 50), errors
    assert len(ok) >= REQUESTS - len(errors)
    assert sum(o.stream for o in ok) >= REQUESTS // 3 - len(errors)
    served_by = {prefix(o.request_id or "") for o in ok}
    assert g2 in served_by and len(served_by) == 2, "nginx did not balance over both gateways"
    assert any(prefix(o.request_id or "") != g2 and o.ended_at > sigterm_at for o in ok)
    assert all(calls >= REQUESTS // 10 for calls in relay_calls), relay_calls

    # The ledger: exactly the requests the gateways published, each once.
    await wait_drained(env)
    published = {e.request_id for e in await stream_events(env) if e.token_id == token.id}
    rows = await env.pg.fetch(
        "SELECT request_id, status_code, quota FROM logs WHERE type = 2 AND token_id = $1",
        token.id,
    )
    ledger = {r["request_id"] for r in rows}
    assert len(rows) == len(ledger), "a request was billed twice"
    assert ledger == published
    completed = {o.request_id for o in ok}
    assert None not in completed
    assert completed <= ledger, "a completed request is missing from the ledger"
    # Every other row is an error a gateway answered after authorizing the request.
    answered_errors = {o.request_id for o in errors if o.request_id}
    assert ledger - completed <= answered_errors
    assert all(r["status_code"] == 200 for r in rows if r["request_id"] in completed)
    n, distinct, quota, used = await token_ledger(env.pg, token.id)
    assert n == distinct == len(ledger)
    assert quota == used == sum(r["quota"] for r in rows) > 0
    await assert_rollups_match_ledger(env.pg)
