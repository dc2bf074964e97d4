"""The whole stack as real processes, with an in-process provider simulator the tests can
inspect (what it was sent) and steer (faults to answer with)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import openai
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests import admin_writes
from tests.conftest import REDIS_URL
from unigate.bus import publish_config_change
from unigate.certs import write_certificates
from unigate.namespace import Namespace
from unigate_cli.devstack import Stack, StackConfig, StackPorts, free_port, ready_timeout
from unigate_sim.openai import create_app
from unigate_sim.turnstile import create_app as create_turnstile_app

SIM_KEY = "sk-sim-" + "k" * 40
# The secret of the session's Turnstile simulator (option TurnstileSecretKey).
TURNSTILE_SECRET = "0x4AAAAAAA-turnstile-test-secret"


class ThreadedServer:
    """Serve an ASGI app on a free port from a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("simulator did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def simulator() -> Iterator[ThreadedServer]:
    server = ThreadedServer(create_app({SIM_KEY}))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim_app(simulator: ThreadedServer) -> Iterator[Starlette]:
    app: Starlette = simulator.server.config.app
    for name in ("calls", "fail_next", "faults", "stream_endings"):
        getattr(app.state, name).clear()
    yield app
    app.state.fail_next.clear()
    app.state.faults.clear()


@pytest.fixture(scope="session")
def turnstile_sim() -> Iterator[ThreadedServer]:
    """Cloudflare Turnstile's siteverify (strict simulator), which the stack's auth asks."""
    server = ThreadedServer(create_turnstile_app(TURNSTILE_SECRET))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's internal CA and certificates (the stack runs with mutual TLS, as in
    production); ``stack.client_channel(service, identity)`` opens a channel with them."""
    path = tmp_path_factory.mktemp("internal-tls")
    write_certificates(path)
    return path


@pytest.fixture(scope="session")
def stack(
    database: str,
    namespace: str,
    secret_key: str,
    log_dir: Path,
    tls_dir: Path,
    redis: Redis,
    nats_cleanup: None,
    turnstile_sim: ThreadedServer,
) -> Iterator[Stack]:
    s = Stack(
        StackConfig(
            sql_dsn=database,
            namespace=namespace,
            secret_key=secret_key,
            # The Redis the tests read (TEST_REDIS_URL: e.g. a redis+cluster:// URL runs the
            # suite against a Redis Cluster).
            redis_url=REDIS_URL,
            ports=StackPorts.free(),
            simulator=None,
            log_dir=log_dir,
            tls_dir=tls_dir,
            # Sweep soon enough that the sweeper can be observed, yet well after any request
            # here reports back even on a loaded machine (a cold first call can take seconds).
            extra_env={
                "RESERVATION_TIMEOUT": "12",
                "RESERVATION_SWEEP_INTERVAL": "0.5",
                "CHANNEL_TEST_FREQUENCY": "1",
                "TURNSTILE_VERIFY_URL": f"{turnstile_sim.url}/turnstile/v0/siteverify",
                # Periodic tests of every enabled channel would add calls to the simulators
                # that tests count (test_channel_monitoring.py runs them on a stack of its own).
                "CHANNEL_MONITOR_FREQUENCY": "0",
                # Batches no client fetches are billed by auth's poller: soon, here.
                "MESSAGE_BATCH_POLL": "1",
            },
        )
    )
    try:
        # Four services importing at once on a loaded 2-core machine can take well over
        # 30 s to answer their readiness probes (seen at load average 20); wait for them.
        s.start(timeout=120)
        yield s
        audit_until_clean(s)
    finally:
        s.stop()


def audit_until_clean(stack: Stack, within: float = 45.0) -> None:
    """At the end of the session, ``unigate audit`` over everything the session's stack did
    (ledger sums against token, user and channel balances, the rollups, Redis against
    Postgres) finds no drift. Reservations still open settle first (the sweeper's timeout
    here is 12 s), so a drift is asked again until ``within``; one that stays fails the run."""
    deadline = time.monotonic() + within
    while True:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("unigate")), "audit"],
            env=stack.config.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0 and done.stdout.startswith("no drift ("):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"unigate audit after the session:\n{done.stdout}{done.stderr}")
        time.sleep(2)


@dataclass(frozen=True)
class Tenant:
    """A channel to the simulator and a fresh key with its own token id."""

    token_id: int
    key: str
    channel_id: int


@pytest.fixture(scope="session")
async def channel_id(pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer) -> int:
    return await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name="simulator",
        key=SIM_KEY,
        base_url=simulator.url,
        models="gpt-4o-mini,gpt-4o,text-embedding-3-small",
    )


@pytest.fixture
async def tenant(pg: asyncpg.Pool, channel_id: int, stack: Stack) -> AsyncIterator[Tenant]:
    token = await admin_writes.create_token(pg, user_id=1, name="test", unlimited_quota=True)
    yield Tenant(token_id=token.id, key=token.key, channel_id=channel_id)


@pytest.fixture
def client(stack: Stack, tenant: Tenant) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )


class ExtraProcess:
    """Another service process of the same stack (database, Redis, NATS), with its own env:
    started with the stack's settings under ``env``, logged to ``<what>-<port>.log`` in the
    stack's log folder, and waited for until ``ready_url`` answers 200."""

    def __init__(
        self,
        stack: Stack,
        what: str,
        port: int,
        env: dict[str, str],
        ready_url: str,
        ready_within: float,
    ) -> None:
        full_env = {**stack.config.env(), **env}
        assert stack.config.log_dir is not None
        self._log = open(stack.config.log_dir / f"{what}-{port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"unigate_{what}"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + max(ready_within, ready_timeout())
        while True:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"extra {what} did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._log.close()


class ExtraGateway(ExtraProcess):
    """Another gateway process of the same stack (a second edge, or other settings)."""

    def __init__(self, stack: Stack, **env: str) -> None:
        self.port = free_port()
        self.ops_port = free_port()
        ports = {"PORT": str(self.port), "GATEWAY_OPS_PORT": str(self.ops_port)}
        super().__init__(stack, "gateway", self.port, {**ports, **env}, f"{self.url}/readyz", 60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def extra_gateway(stack: Stack) -> Iterator[Callable[..., ExtraGateway]]:
    started: list[ExtraGateway] = []

    def start(**env: str) -> ExtraGateway:
        gw = ExtraGateway(stack, **env)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


async def broadcast_change(stack: Stack, kind: str, ids: list[int]) -> None:
    """What the management tools do after a write: tell every service."""
    nc = await nats.connect(stack.config.nats_url)
    try:
        await publish_config_change(nc, Namespace(stack.config.namespace), kind, ids)
    finally:
        await nc.close()
