"""An OpenAI channel's balance, read as One API reads it (the legacy billing API: the
subscription's hard limit less this period's usage), from a strict simulator of it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.conftest import ThreadedServer
from tests.e2e.test_management_api import ROOT_PASSWORD, Api
from unigate_cli.devstack import Stack
from unigate_sim.openai import create_app

KEY = "sk-billing-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def openai_sim() -> Iterator[ThreadedServer]:
    server = ThreadedServer(create_app({KEY}))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def root(stack: Stack) -> AsyncIterator[Api]:
    api = Api(stack)
    assert (await api.login("root", ROOT_PASSWORD)).status_code == 200
    yield api
    await api.close()


def test_the_simulator_refuses_what_openai_refused(openai_sim: ThreadedServer) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    usage = openai_sim.url + "/v1/dashboard/billing/usage"
    with httpx.Client() as http:
        assert http.get(usage, headers=auth).status_code == 400  # dates are required
        bad = http.get(usage, params={"start_date": "2026/01/01", "end_date": "x"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "start_date"
        too_long = {"start_date": "2026-01-01", "end_date": "2026-06-01"}
        assert http.get(usage, params=too_long, headers=auth).status_code == 400
        backwards = {"start_date": "2026-02-01", "end_date": "2026-01-01"}
        assert http.get(usage, params=backwards, headers=auth).status_code == 400
        sub = openai_sim.url + "/v1/dashboard/billing/subscription"
        assert http.get(sub).status_code == 401
        assert http.get(sub, headers=auth).json()["hard_limit_usd"] == 120.0


@pytest.mark.parametrize(("channel_type", "suffix"), [(1, ""), (1, "/v1"), (8, "/v1")])
async def test_openai_balance_is_the_hard_limit_less_the_usage(
    root: Api, openai_sim: ThreadedServer, channel_type: int, suffix: str
) -> None:
    channel = await root.ok(
        "POST",
        "/channel/",
        json={
            "type": channel_type,
            "name": f"openai-balance-{channel_type}",
            "key": KEY,
            "base_url": openai_sim.url + suffix,
            "models": "some-model",
            "group": "nobody-uses-this",
        },
    )
    try:
        answer = await root.ok("GET", f"/channel/update_balance/{channel['id']}", whole=True)
        assert answer["balance"] == pytest.approx(120.0 - 20.50)
        account = openai_sim.server.config.app.state.billing
        account.usage_cents = 11_999.0
        answer = await root.ok("GET", f"/channel/update_balance/{channel['id']}", whole=True)
        assert answer["balance"] == pytest.approx(0.01)
        stored = await root.ok("GET", f"/channel/{channel['id']}")
        assert stored["balance"] == pytest.approx(0.01) and stored["balance_updated_time"] > 0
        account.usage_cents = 2_050.0
        # A key the provider refuses gives no balance.
        await root.ok("PUT", "/channel/", json={"id": channel["id"], "key": "sk-wrong-123456789"})
        refused = await root.raw("GET", f"/channel/update_balance/{channel['id']}")
        assert refused.json()["success"] is False
        assert "HTTP 401" in refused.json()["message"]
    finally:
        await root.ok("DELETE", f"/channel/{channel['id']}")
