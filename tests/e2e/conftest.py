"""The whole stack as real processes, with an in-process provider simulator the tests can
inspect (what it was sent) and steer (faults to answer with)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette

from unigate import admin
from unigate.devstack import Stack, StackConfig, StackPorts, free_port
from unigate_sim.openai import create_app

SIM_KEY = "sk-sim-" + "k" * 40


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
    app.state.calls.clear()
    app.state.fail_next.clear()
    yield app
    app.state.fail_next.clear()


@pytest.fixture(scope="session")
def stack(
    database: str,
    namespace: str,
    secret_key: str,
    log_dir: Path,
    redis: Redis,
    nats_cleanup: None,
) -> Iterator[Stack]:
    s = Stack(
        StackConfig(
            sql_dsn=database,
            namespace=namespace,
            secret_key=secret_key,
            ports=StackPorts.free(),
            simulator=None,
            log_dir=log_dir,
        )
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


@dataclass(frozen=True)
class Tenant:
    """A channel to the simulator and a fresh key with its own token id."""

    token_id: int
    key: str
    channel_id: int


@pytest.fixture(scope="session")
async def channel_id(pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer) -> int:
    return await admin.create_channel(
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
    token = await admin.create_token(pg, user_id=1, name="test", unlimited_quota=True)
    yield Tenant(token_id=token.id, key=token.key, channel_id=channel_id)


@pytest.fixture
def client(stack: Stack, tenant: Tenant) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0)
