"""Turnstile's server-side check (``unigate_auth.turnstile``) against the strict siteverify
simulator (``unigate_sim.turnstile``), served over real HTTP: each documented refusal."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ThreadedServer
from unigate_auth.turnstile import Outcome, TurnstileUnavailable, siteverify
from unigate_sim.turnstile import TurnstileState, create_app

SECRET = "0x4AAAAAAA-unit-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    s = ThreadedServer(create_app(SECRET))
    s.start()
    yield s
    s.stop()


@pytest.fixture
def state(server: ThreadedServer) -> TurnstileState:
    st: TurnstileState = server.server.config.app.state.turnstile
    return st


def url(server: ThreadedServer) -> str:
    return server.url + "/turnstile/v0/siteverify"


async def test_a_token_passes_once(server: ThreadedServer, state: TurnstileState) -> None:
    token = state.issue()
    assert await siteverify(url(server), SECRET, token, "203.0.113.9") == Outcome(True, ())
    assert state.checks[-1] == {"secret": SECRET, "response": token, "remoteip": "203.0.113.9"}
    again = await siteverify(url(server), SECRET, token, "203.0.113.9")
    assert again == Outcome(False, ("timeout-or-duplicate",))


@pytest.mark.parametrize(
    ("secret", "token", "code"),
    [
        ("", "issued", "missing-input-secret"),
        ("wrong", "issued", "invalid-input-secret"),
        (SECRET, "0.never-issued", "invalid-input-response"),
        (SECRET, "stale", "timeout-or-duplicate"),
    ],
)
async def test_refusals(
    server: ThreadedServer, state: TurnstileState, secret: str, token: str, code: str
) -> None:
    if token == "issued":
        token = state.issue()
    elif token == "stale":
        token = state.issue(age=301)
    outcome = await siteverify(url(server), secret, token, "")
    assert outcome == Outcome(False, (code,))


async def test_an_empty_or_oversized_token_is_never_sent(
    server: ThreadedServer, state: TurnstileState
) -> None:
    before = len(state.checks)
    for token in ("", "x" * 2049):
        assert not (await siteverify(url(server), SECRET, token, "")).passed
    assert len(state.checks) == before


async def test_the_simulator_refuses_what_siteverify_refuses(server: ThreadedServer) -> None:
    async with httpx.AsyncClient() as http:
        got = await http.get(url(server))
        assert got.status_code == 405
        missing = await http.post(url(server), json={"secret": SECRET})
        assert missing.json() == {
            "success": False,
            "error-codes": ["missing-input-response"],
            "messages": [],
        }
        text = await http.post(
            url(server), content=b"hello", headers={"content-type": "text/plain"}
        )
        assert text.json()["error-codes"] == ["bad-request"]


async def test_an_unreachable_siteverify_fails_closed() -> None:
    with pytest.raises(TurnstileUnavailable):
        await siteverify("http://127.0.0.1:9/siteverify", SECRET, "0.token", "")
