"""Vertex AI credentials: the relay's service-account JWT is exactly what Google's token
endpoint verifies (the simulator checks the RS256 signature against the account's public key,
``aud``, ``iss``, ``scope`` and times), forged or stale assertions are refused, and access
tokens are fetched once per key and reused, also under concurrency."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.unit.test_openai_simulator import ThreadedServer
from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.vertex import VertexProvider
from unigate_relay.providers.vertex.credentials import (
    GRANT_TYPE,
    ServiceAccount,
    TokenCache,
    TokenRefused,
    parse_service_account,
    signed_assertion,
)
from unigate_sim.gemini import create_vertex_app, new_service_account, register

PROJECT = "unigate-sim-project"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _resign(assertion: str, account: ServiceAccount, **claims: Any) -> str:
    """The assertion with some claims changed, properly signed by ``account``."""
    header, payload, _ = assertion.split(".")
    changed = {**orjson.loads(base64.urlsafe_b64decode(payload + "==")), **claims}
    body = f"{header}.{_b64(orjson.dumps(changed))}"
    signature = account.private_key.sign(body.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{body}.{_b64(signature)}"


@pytest.fixture
def sim() -> tuple[Starlette, TestClient, ServiceAccount]:
    app = create_vertex_app()
    client = TestClient(app, base_url="http://vertex.test")
    info, public = new_service_account(PROJECT, "http://vertex.test/token")
    register(app, info, public)
    return app, client, parse_service_account(orjson.dumps(info).decode())


def _exchange(client: TestClient, assertion: str, grant: str = GRANT_TYPE) -> Any:
    return client.post("/token", data={"grant_type": grant, "assertion": assertion})


def test_the_relays_assertion_is_accepted_and_its_token_opens_vertex(
    sim: tuple[Starlette, TestClient, ServiceAccount],
) -> None:
    _, client, account = sim
    granted = _exchange(client, signed_assertion(account))
    assert granted.status_code == 200
    token = granted.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3599
    model_path = "/publishers/google/models/gemini-2.5-flash:generateContent"
    url = f"/v1/projects/{PROJECT}/locations/us-central1{model_path}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    ok = client.post(url, json=body, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert (
        ok.status_code == 200
        and ok.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: hi"
    )
    assert client.post(url, json=body).json()["error"]["status"] == "UNAUTHENTICATED"
    bad = client.post(url, json=body, headers={"Authorization": "Bearer ya29.made-up"})
    assert bad.status_code == 401
    other = url.replace(PROJECT, "someone-else")
    denied = client.post(
        other, json=body, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"
    missing = url.replace("gemini-2.5-flash", "gemini-0")
    absent = client.post(
        missing, json=body, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert absent.status_code == 404 and "Publisher Model" in absent.json()["error"]["message"]


def test_forged_stale_or_misaddressed_assertions_are_refused(
    sim: tuple[Starlette, TestClient, ServiceAccount],
) -> None:
    app, client, account = sim
    good = signed_assertion(account)
    header, payload, signature = good.split(".")
    cases = {
        "wrong signature": f"{header}.{payload}.{_b64(b'x' * 256)}",
        "tampered claims": ".".join(
            [header, _b64(orjson.dumps({"iss": account.client_email, "scope": "x"})), signature]
        ),
        "expired": _resign(good, account, iat=1_000_000, exp=1_003_600),
        "too long-lived": _resign(
            good, account, exp=orjson.loads(base64.urlsafe_b64decode(payload + "=="))["iat"] + 7200
        ),
        "wrong audience": _resign(good, account, aud="https://oauth2.googleapis.com/token"),
        "unknown account": _resign(good, account, iss="nobody@x.iam.gserviceaccount.com"),
        "narrow scope": _resign(
            good, account, scope="https://www.googleapis.com/auth/devstorage.read_only"
        ),
        "not a jwt": "abc",
    }
    refusals = {name: _exchange(client, assertion) for name, assertion in cases.items()}
    assert {name: r.status_code for name, r in refusals.items()} == dict.fromkeys(cases, 400)
    described = {name: r.json()["error_description"] for name, r in refusals.items()}
    assert described["wrong signature"] == described["tampered claims"] == "Invalid JWT Signature."
    assert "short-lived" in described["expired"] and "short-lived" in described["too long-lived"]
    assert "audience" in described["wrong audience"]
    assert refusals["narrow scope"].json()["error"] == "invalid_scope"
    # A key the endpoint does not know for this account (another key pair) is refused too.
    stranger_info, _ = new_service_account(PROJECT, "http://vertex.test/token")
    stranger_info["client_email"] = account.client_email
    stranger_info["private_key_id"] = account.private_key_id
    stranger = parse_service_account(orjson.dumps(stranger_info).decode())
    assert (
        _exchange(client, signed_assertion(stranger)).json()["error_description"]
        == "Invalid JWT Signature."
    )
    assert (
        _exchange(client, good, grant="client_credentials").json()["error"]
        == "unsupported_grant_type"
    )
    assert app.state.issued == {}


@pytest.fixture
def served() -> Iterator[tuple[ThreadedServer, dict[str, str]]]:
    app = create_vertex_app()
    with ThreadedServer(app) as server:
        info, public = new_service_account(PROJECT, server.url + "/token")
        register(app, info, public)
        yield server, info


async def test_one_token_fetch_for_many_concurrent_calls(
    served: tuple[ThreadedServer, dict[str, str]],
) -> None:
    server, info = served
    raw = orjson.dumps(info).decode()
    account = parse_service_account(raw)
    cache = TokenCache()
    async with aiohttp.ClientSession() as http:
        tokens = await asyncio.gather(*(cache.token(account, http, 10) for _ in range(20)))
        assert len(set(tokens)) == 1 and server.app.state.token_requests == 1
        assert await cache.token(account, http, 10) == tokens[0]
        assert server.app.state.token_requests == 1
        # A token Vertex refused is dropped, and the next call fetches a fresh one.
        cache.forget(account)
        assert await cache.token(account, http, 10) != tokens[0]
        assert server.app.state.token_requests == 2
        # Short-lived tokens are renewed after half their life.
        server.app.state.token_lifetime = 1
        cache.forget(account)
        first = await cache.token(account, http, 10)
        await asyncio.sleep(0.6)
        assert await cache.token(account, http, 10) != first
        # An account the endpoint refuses is a fatal refusal, not a retryable one.
        del server.app.state.accounts[account.client_email]
        cache.forget(account)
        with pytest.raises(TokenRefused) as refused:
            await cache.token(account, http, 10)
        assert refused.value.fatal and refused.value.status == 400


def _context(
    http: aiohttp.ClientSession, server: ThreadedServer, key: str, config: dict[str, str]
) -> CallContext:
    body = {"model": "g", "messages": [{"role": "user", "content": "hello vertex"}]}
    return CallContext(
        request=relay_pb2.RelayRequest(
            endpoint="chat.completions",
            body=orjson.dumps(body),
            upstream_model="gemini-2.5-flash",
            model="g",
        ),
        channel=auth_pb2.Channel(
            id=1,
            type=42,
            base_url=server.url,
            keys=key.split("\n"),
            config_json=orjson.dumps(config).decode(),
        ),
        api_key=key.split("\n")[0],
        http=http,
    )


async def test_vertex_provider_urls_tokens_and_refused_keys(
    served: tuple[ThreadedServer, dict[str, str]],
) -> None:
    server, info = served
    provider = VertexProvider()
    async with aiohttp.ClientSession() as http:
        # A pretty-printed key file arrives split into lines; it is put back together.
        pretty = orjson.dumps(info, option=orjson.OPT_INDENT_2).decode()
        result = await provider.call(_context(http, server, pretty, {"region": "europe-west4"}))
        assert not result.HasField("error"), result.error
        assert orjson.loads(result.body)["choices"][0]["message"]["content"] == "Echo: hello vertex"
        call = server.app.state.sim.calls[-1]
        model_path = "/publishers/google/models/gemini-2.5-flash:generateContent"
        assert call["path"] == f"/v1/projects/{PROJECT}/locations/europe-west4{model_path}"
        # The project from the config wins over the service account's (and here has no access).
        denied = await provider.call(
            _context(http, server, orjson.dumps(info).decode(), {"project_id": "elsewhere"})
        )
        assert denied.error.fatal and denied.error.error.code == "upstream_auth_failed"
        # The same account's key, however formatted, shares one token.
        assert server.app.state.token_requests == 1
        garbage = await provider.call(_context(http, server, "not json", {}))
        assert garbage.error.fatal and garbage.error.error.code == "upstream_auth_failed"
