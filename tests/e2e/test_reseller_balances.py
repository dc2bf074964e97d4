"""The balances of One API's OpenAI resellers (CloseAI, OpenAI-SB, AIProxy, API2GPT, AIGC2D),
read through the management API (``/api/channel/update_balance/{id}`` and the update-all
route) from strict simulators of their account APIs, as One API reads them: the balance
stored on the channel is the simulator's, and a key the provider refuses is a clear One API
envelope failure that leaves the stored balance alone."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.conftest import ThreadedServer
from tests.e2e.test_management_api import ROOT_PASSWORD, Api
from unigate_auth.admin.balances import BalanceUnavailable, read_balance
from unigate_cli.devstack import Stack
from unigate_sim.reseller_billing import DEFAULT_BALANCES, create_reseller_billing_app

# Channel type, simulator, the base URL's suffix an operator may give (the version segment
# must be trimmed for these host-rooted APIs), the refusal's words in the failure message.
RESELLERS = [
    (4, "closeai", "", "HTTP 401"),
    (5, "openai-sb", "/v1", "provider refused: api_key not found"),
    (10, "aiproxy", "", "provider refused: code 401, Invalid Api-Key"),
    (12, "api2gpt", "/v1", "HTTP 401"),
    (13, "aigc2d", "", "HTTP 401"),
]


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, tuple[ThreadedServer, str]]]:
    out = {}
    for _, name, _, _ in RESELLERS:
        key = f"sk-{name}-" + secrets.token_hex(16)
        server = ThreadedServer(create_reseller_billing_app(name, {key}))
        server.start()
        out[name] = (server, key)
    yield out
    for server, _ in out.values():
        server.stop()


@pytest.fixture
async def root(stack: Stack) -> AsyncIterator[Api]:
    api = Api(stack)
    assert (await api.login("root", ROOT_PASSWORD)).status_code == 200
    yield api
    await api.close()


def test_the_simulators_refuse_what_the_resellers_refuse(
    sims: dict[str, tuple[ThreadedServer, str]],
) -> None:
    with httpx.Client() as http:
        for name in ("closeai", "api2gpt", "aigc2d"):
            server, key = sims[name]
            url = server.url + "/dashboard/billing/credit_grants"
            assert http.get(url).status_code == 401
            wrong = http.get(url, headers={"Authorization": "Bearer sk-wrong-0123456789"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "invalid_api_key"
            assert http.get(url, headers={"Api-Key": key}).status_code == 401
            assert http.post(url, headers={"Authorization": f"Bearer {key}"}).status_code == 405
            v1 = http.get(server.url + "/v1/dashboard/billing/credit_grants")
            assert v1.status_code == 404
        server, key = sims["openai-sb"]
        status = server.url + "/sb-api/user/status"
        # The key goes in the query; a bearer header alone is no key at all.
        no_query = http.get(status, headers={"Authorization": f"Bearer {key}"}).json()
        assert no_query["data"] is None and no_query["msg"]
        assert http.get(status, params={"api_key": "sk-wrong"}).json()["data"] is None
        assert http.get(status, params={"api_key": key}).json()["data"]["credit"] == "36.1234"
        server, key = sims["aiproxy"]
        overview = server.url + "/api/report/getUserOverview"
        bearer = http.get(overview, headers={"Authorization": f"Bearer {key}"}).json()
        assert bearer["success"] is False and bearer["error_code"] == 401
        ok = http.get(overview, headers={"Api-Key": key}).json()
        assert ok["success"] is True and ok["data"]["totalPoints"] == 25_000.0


@pytest.mark.parametrize(("channel_type", "name", "suffix", "refusal"), RESELLERS)
async def test_reseller_balance_is_read_stored_and_refused(
    root: Api,
    sims: dict[str, tuple[ThreadedServer, str]],
    channel_type: int,
    name: str,
    suffix: str,
    refusal: str,
) -> None:
    server, key = sims[name]
    app = server.server.config.app
    channel = await root.ok(
        "POST",
        "/channel/",
        json={
            "type": channel_type,
            "name": f"balance-{name}",
            "key": key,
            "base_url": server.url + suffix,
            "models": "gpt-4o-mini",
            "group": "nobody-uses-this",
        },
    )
    try:
        answer = await root.ok("GET", f"/channel/update_balance/{channel['id']}", whole=True)
        assert answer["success"] is True
        assert answer["balance"] == pytest.approx(DEFAULT_BALANCES[name])
        app.state.balance = 3.21
        everything = {b["id"]: b for b in await root.ok("GET", "/channel/update_balance")}
        assert everything[channel["id"]]["balance"] == pytest.approx(3.21)
        stored = await root.ok("GET", f"/channel/{channel['id']}")
        assert stored["balance"] == pytest.approx(3.21) and stored["balance_updated_time"] > 0
        # A key the provider refuses: One API's envelope, the provider's reason, no key in
        # the message, and the stored balance stays.
        wrong = "sk-wrong-" + secrets.token_hex(8)
        await root.ok("PUT", "/channel/", json={"id": channel["id"], "key": wrong})
        refused = await root.raw("GET", f"/channel/update_balance/{channel['id']}")
        assert refused.status_code == 200
        assert refused.json()["success"] is False
        assert refusal in refused.json()["message"] and wrong not in refused.json()["message"]
        assert (await root.ok("GET", f"/channel/{channel['id']}"))["balance"] == pytest.approx(3.21)
    finally:
        app.state.balance = DEFAULT_BALANCES[name]
        await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_a_refusal_quoting_the_key_is_passed_on_without_it() -> None:
    """OpenAI-SB and AIProxy refuse in their own words (HTTP 200): should those words quote
    the key, the operator's message carries the reason with the key blanked out."""

    async def quoting(request: Request) -> JSONResponse:
        key = request.query_params["api_key"]
        return JSONResponse({"code": 403, "msg": f"api_key {key} is disabled", "data": None})

    server = ThreadedServer(Starlette(routes=[Route("/sb-api/user/status", quoting)]))
    server.start()
    try:
        key = "sk-sb-" + secrets.token_hex(16)
        with pytest.raises(BalanceUnavailable) as refused:
            await read_balance(5, server.url, key)
        assert str(refused.value) == "provider refused: api_key *** is disabled"
    finally:
        server.stop()
