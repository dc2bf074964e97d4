"""The internal gRPC side of management: server reflection and the health protocol on auth and
billing (what ``grpcurl list`` and ``grpc_health_probe`` use), and provider balances read
through each provider's simulator with the channel's key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.e2e.conftest import ThreadedServer
from tests.e2e.test_management_api import ROOT_PASSWORD, Api
from unigate.grpcutil import blocking_client_channel
from unigate_cli.devstack import Stack
from unigate_sim.compatible import create_compatible_app

# Channel type, simulator profile, default balance of the simulator (its reference example).
BALANCE_PROVIDERS = [
    (36, "deepseek", 110.0),
    (44, "siliconflow", 88.88),
    (20, "openrouter", 74.75),
    (25, "moonshot", 49.58894),
]


@pytest.fixture
async def root(stack: Stack) -> AsyncIterator[Api]:
    api = Api(stack)
    assert (await api.login("root", ROOT_PASSWORD)).status_code == 200
    yield api
    await api.close()


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("auth", {"unigate.v1.AuthService", "unigate.v1.AdminService"}),
        ("billing", {"unigate.v1.BillingService"}),
    ],
)
def test_reflection_lists_the_services_and_health_says_serving(
    stack: Stack, service: str, expected: set[str]
) -> None:
    tls = stack.tls_files("admin")
    with blocking_client_channel(stack.grpc_address(service), tls, service) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert expected | {"grpc.health.v1.Health"} <= services
        # Reflection serves the descriptors too (what `grpcurl describe` needs).
        name = sorted(expected)[0]
        pool = descriptor_pool.DescriptorPool(db)
        method_names = {m.name for m in pool.FindServiceByName(name).methods}
        assert method_names, name
        if name == "unigate.v1.AdminService":
            assert {"Login", "CreateChannel", "TestChannel"} <= method_names
        health = health_pb2_grpc.HealthStub(channel)
        for named in ["", *expected]:
            answer = health.Check(health_pb2.HealthCheckRequest(service=named), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, named
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_admin_rpcs_refuse_a_call_without_credentials(stack: Stack) -> None:
    """The gateway's identity carries no user of its own: without a session or access token
    (or with a forged one) AdminService refuses it. The operator's (``admin``) is root without
    either, but a forged session is refused to it too, never read as root."""
    from google.protobuf import empty_pb2

    from unigate.v1 import admin_pb2, admin_pb2_grpc

    forged = (("x-unigate-session", "forged"),)
    for identity in ("gateway", "admin"):
        tls = stack.tls_files(identity)
        with blocking_client_channel(stack.grpc_address("auth"), tls, "auth") as channel:
            stub = admin_pb2_grpc.AdminServiceStub(channel)
            if identity == "gateway":
                with pytest.raises(grpc.RpcError) as err:
                    stub.ListUsers(admin_pb2.ListRequest(), timeout=5)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            else:
                # Other tests' users may fill the first page: search for root by name.
                found = stub.ListUsers(admin_pb2.ListRequest(keyword="root", size=100), timeout=5)
                assert "root" in {u.username for u in found.users}
            with pytest.raises(grpc.RpcError) as err:
                stub.GetSelf(empty_pb2.Empty(), metadata=forged, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, identity
            status = stub.GetStatus(empty_pb2.Empty(), timeout=5)
            assert status.quota_per_unit == 500_000


@pytest.fixture(scope="module")
def provider_sims() -> Iterator[dict[str, tuple[ThreadedServer, str]]]:
    sims = {}
    for _, name, _ in BALANCE_PROVIDERS:
        key = f"sk-{name}-" + secrets.token_hex(16)
        server = ThreadedServer(create_compatible_app(name, {key}))
        server.start()
        sims[name] = (server, key)
    yield sims
    for server, _ in sims.values():
        server.stop()


@pytest.mark.parametrize(("channel_type", "provider", "default"), BALANCE_PROVIDERS)
async def test_channel_balance_is_read_from_the_provider_and_stored(
    stack: Stack,
    root: Api,
    provider_sims: dict[str, tuple[ThreadedServer, str]],
    channel_type: int,
    provider: str,
    default: float,
) -> None:
    server, key = provider_sims[provider]
    # The base URL as the relay takes it: the version segment is part of it where there is one.
    base = {"deepseek": "", "openrouter": "/api/v1"}.get(provider, "/v1")
    channel = await root.ok(
        "POST",
        "/channel/",
        json={
            "type": channel_type,
            "name": f"balance-{provider}",
            "key": key,
            "base_url": server.url + base,
            "models": "some-model",
            "group": "nobody-uses-this",
        },
    )
    answer = await root.ok("GET", f"/channel/update_balance/{channel['id']}", whole=True)
    assert answer["balance"] == pytest.approx(default)
    server.server.config.app.state.balance = 12.5
    try:
        await root.ok("GET", f"/channel/update_balance/{channel['id']}")
        stored = await root.ok("GET", f"/channel/{channel['id']}")
        assert stored["balance"] == pytest.approx(12.5) and stored["balance_updated_time"] > 0
        everything = {b["id"]: b for b in await root.ok("GET", "/channel/update_balance")}
        assert everything[channel["id"]]["balance"] == pytest.approx(12.5)
    finally:
        del server.server.config.app.state.balance
    # A key the provider refuses gives no balance, and the stored one stays.
    await root.ok("PUT", "/channel/", json={"id": channel["id"], "key": "sk-wrong-key-123456"})
    refused = await root.raw("GET", f"/channel/update_balance/{channel['id']}")
    assert refused.status_code == 200 and "HTTP 401" in refused.json()["message"]
    assert (await root.ok("GET", f"/channel/{channel['id']}"))["balance"] == pytest.approx(12.5)
    await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_a_channel_type_without_a_balance_api_says_so(stack: Stack, root: Api) -> None:
    channel = await root.ok(
        "POST",
        "/channel/",
        json={"type": 14, "key": "sk-ant-x-123456789", "models": "m", "group": "nobody-uses-this"},
    )
    r = await root.raw("GET", f"/channel/update_balance/{channel['id']}")
    assert r.status_code == 200 and "publishes no balance" in r.json()["message"]
    await root.ok("DELETE", f"/channel/{channel['id']}")
