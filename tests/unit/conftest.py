"""Fixtures of the simulator tests: one simulator per test module, its recorded calls and
injected faults reset before each test, and clients for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.unit.test_openai_simulator import API_KEY, ThreadedServer
from unigate_sim.openai import create_app


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app({API_KEY})) as running:
        yield running


@pytest.fixture
def app(server: ThreadedServer) -> Iterator[Starlette]:
    for name in ("calls", "fail_next", "faults", "stream_endings"):
        getattr(server.app.state, name).clear()
    yield server.app
    server.app.state.fail_next.clear()
    server.app.state.faults.clear()


@pytest.fixture
def client(server: ThreadedServer, app: Starlette) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=API_KEY, base_url=server.url + "/v1", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server: ThreadedServer, app: Starlette) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers) as raw:
        yield raw
