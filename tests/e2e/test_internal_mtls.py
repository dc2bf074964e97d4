"""Every internal RPC of every service, over the stack's real ports with the generated stubs,
refuses callers it should: plaintext, TLS without a client certificate and a certificate
from another CA fail the handshake (UNAVAILABLE); a certificate of our CA without a unigate
identity is UNAUTHENTICATED; a valid identity the table (``unigate.rpc_acl``) does not list
for the method is PERMISSION_DENIED, and none of these reaches a handler. The identities the
table lists get the handler's own answer. Then the attacks of issue 16, one by one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import empty_pb2, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.e2e.conftest import Tenant
from unigate import certs
from unigate.certs import IDENTITIES, TlsFiles
from unigate.grpcutil import client_channel
from unigate.rpc_acl import ALLOWED
from unigate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    billing_pb2,
    billing_pb2_grpc,
    relay_pb2,
    relay_pb2_grpc,
)
from unigate_cli.devstack import Stack

# What each server serves: (file descriptor, service name, generated stub class).
SERVED: dict[str, list[tuple[Any, str, Any]]] = {
    "auth": [
        (auth_pb2.DESCRIPTOR, "AuthService", auth_pb2_grpc.AuthServiceStub),
        (admin_pb2.DESCRIPTOR, "AdminService", admin_pb2_grpc.AdminServiceStub),
        (health_pb2.DESCRIPTOR, "Health", health_pb2_grpc.HealthStub),
        (reflection_pb2.DESCRIPTOR, "ServerReflection", reflection_pb2_grpc.ServerReflectionStub),
    ],
    "relay": [(relay_pb2.DESCRIPTOR, "RelayService", relay_pb2_grpc.RelayServiceStub)],
    "billing": [
        (billing_pb2.DESCRIPTOR, "BillingService", billing_pb2_grpc.BillingServiceStub),
        (health_pb2.DESCRIPTOR, "Health", health_pb2_grpc.HealthStub),
        (reflection_pb2.DESCRIPTOR, "ServerReflection", reflection_pb2_grpc.ServerReflectionStub),
    ],
}


@dataclass(frozen=True)
class Rpc:
    server: str
    path: str
    name: str
    stub: Any
    request: Callable[[], Message]
    client_streaming: bool
    server_streaming: bool


def every_rpc() -> list[Rpc]:
    out = []
    for server, services in SERVED.items():
        for file, service, stub in services:
            svc = file.services_by_name[service]
            for m in svc.methods:
                out.append(
                    Rpc(
                        server,
                        f"/{svc.full_name}/{m.name}",
                        m.name,
                        stub,
                        message_factory.GetMessageClass(m.input_type),
                        m.client_streaming,
                        m.server_streaming,
                    )
                )
    return out


RPCS = every_rpc()


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str

    @property
    def refused_by_identity_check(self) -> bool:
        # The check's own words (rpc_acl): a handler never says these.
        return (
            self.code == grpc.StatusCode.PERMISSION_DENIED and " may not call " in self.details
        ) or (
            self.code == grpc.StatusCode.UNAUTHENTICATED
            and "no unigate service identity" in self.details
        )


# A session id no session has: AdminService refuses it in its handler (UNAUTHENTICATED), so
# probing every RPC as the operator, who is root without one, changes nothing.
PROBE_METADATA = (("x-unigate-session", "probe-no-such-session"),)


async def _one(rpc: Rpc, channel: grpc.aio.Channel, send: bool = True) -> Outcome:
    """Call ``rpc`` with an empty request; the first answer (or the error) is the outcome.

    A client-streaming call sends its request only if ``send``; otherwise it opens the stream
    and waits, as a caller probing for a handler would. (A message written while the server
    refuses the call races its status, and grpc.aio then reports INTERNAL instead.) If the
    server let such a call through, its handler would wait for the request and the outcome
    would be DEADLINE_EXCEEDED, not the refusal."""
    method = getattr(rpc.stub(channel), rpc.name)
    request = rpc.request()

    async def requests() -> AsyncIterator[Message]:
        if send:
            yield request
        # Keep the stream open until the call ends (the caller cancels it).
        await asyncio.Event().wait()

    metadata = PROBE_METADATA if rpc.path.startswith("/unigate.v1.AdminService/") else None
    try:
        if rpc.client_streaming:
            call = method(requests(), timeout=10, metadata=metadata)
        else:
            call = method(request, timeout=10, metadata=metadata)
        if rpc.server_streaming:
            async for _ in call:
                break
            call.cancel()
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(grpc.StatusCode.OK, "")


def _raw_channel(
    stack: Stack, server: str, credentials: grpc.ChannelCredentials | None
) -> grpc.aio.Channel:
    """A channel that is NOT made by the helper: what an attacker holds."""
    target = stack.grpc_address(server)
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", server)]
    )


@pytest.fixture(scope="module")
def foreign(
    tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[dict[str, TlsFiles]]:
    """Certificates the servers must not take: another CA's "gateway", and two of our own
    CA's without a unigate identity (another trust domain) or with an unknown one."""
    other = tmp_path_factory.mktemp("other-ca")
    certs.write_certificates(other, ["gateway"])
    ours = certs.load_ca(tls_dir)
    assert ours is not None
    made = {"other-ca": TlsFiles.in_dir(other, "gateway")}
    for label, identity, spiffe in [
        ("no-identity", "gateway", "spiffe://elsewhere/gateway"),
        ("unknown-identity", "mallory", None),
    ]:
        key, cert = certs.issue(*ours, identity, spiffe_id=spiffe)
        files = TlsFiles(
            tls_dir / certs.CA_FILE, other / f"{label}.pem", other / f"{label}-key.pem"
        )
        files.cert.write_bytes(certs.cert_pem(cert))
        files.key.write_bytes(certs.key_pem(key))
        made[label] = files
    yield made


def _credentials(files: TlsFiles, ca: Path) -> grpc.ChannelCredentials:
    _, cert, key = files.read()
    return grpc.ssl_channel_credentials(ca.read_bytes(), key, cert)


async def _each(
    stack: Stack,
    open_channel: Callable[[str], grpc.aio.Channel],
    send: Callable[[Rpc], bool] = lambda rpc: False,
) -> dict[Rpc, Outcome]:
    outcomes = {}
    for server in SERVED:
        channel = open_channel(server)
        try:
            for rpc in (r for r in RPCS if r.server == server):
                outcomes[rpc] = await _one(rpc, channel, send(rpc))
        finally:
            await channel.close()
    return outcomes


def test_the_table_decides_every_rpc_served() -> None:
    assert {rpc.path for rpc in RPCS} <= set(ALLOWED)
    assert len(RPCS) > 50  # AdminService alone has 41


async def test_plaintext_and_certificateless_callers_fail_the_handshake(
    stack: Stack, tls_dir: Path, foreign: dict[str, TlsFiles]
) -> None:
    ca = (tls_dir / certs.CA_FILE).read_bytes()
    attempts = {
        "plaintext": lambda server: _raw_channel(stack, server, None),
        "TLS without a client certificate": lambda server: _raw_channel(
            stack, server, grpc.ssl_channel_credentials(ca)
        ),
        "a certificate from another CA": lambda server: _raw_channel(
            stack, server, _credentials(foreign["other-ca"], tls_dir / certs.CA_FILE)
        ),
    }
    for label, open_channel in attempts.items():
        outcomes = await _each(stack, open_channel)
        assert len(outcomes) == len(RPCS)
        wrong = {r.path: o for r, o in outcomes.items() if o.code != grpc.StatusCode.UNAVAILABLE}
        assert not wrong, f"{label}: {wrong}"


async def test_a_certificate_without_a_unigate_identity_is_unauthenticated(
    stack: Stack, tls_dir: Path, foreign: dict[str, TlsFiles]
) -> None:
    files = foreign["no-identity"]
    outcomes = await _each(
        stack, lambda server: client_channel(stack.grpc_address(server), files, server)
    )
    wrong = {
        r.path: o
        for r, o in outcomes.items()
        if not (o.code == grpc.StatusCode.UNAUTHENTICATED and o.refused_by_identity_check)
    }
    assert not wrong


@pytest.mark.parametrize("identity", [*IDENTITIES, "unknown-identity"])
async def test_each_identity_reaches_exactly_the_rpcs_the_table_gives_it(
    stack: Stack, identity: str, foreign: dict[str, TlsFiles]
) -> None:
    files = foreign.get(identity) or stack.tls_files(identity)
    assert files is not None
    outcomes = await _each(
        stack,
        lambda server: client_channel(stack.grpc_address(server), files, server),
        send=lambda rpc: identity in ALLOWED[rpc.path],
    )
    assert len(outcomes) == len(RPCS)
    for rpc, outcome in outcomes.items():
        where = (rpc.server, rpc.path, outcome)
        if identity in ALLOWED[rpc.path]:
            # The handler answered (its own errors to an empty request included).
            assert outcome.code != grpc.StatusCode.UNAVAILABLE, where
            assert not outcome.refused_by_identity_check, where
        else:
            assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, where
            assert outcome.refused_by_identity_check, where
    allowed = [rpc for rpc in outcomes if identity in ALLOWED[rpc.path]]
    # Health and reflection for every identity of ours, more for each service.
    assert bool(allowed) == (identity != "unknown-identity")


async def test_the_attacks_of_issue_16_are_refused_and_the_rightful_callers_served(
    stack: Stack, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    """A plaintext caller (what worked before) and a gateway identity asking for the relay's
    rights are both refused; the relay itself gets the channel with its decrypted key."""
    before = await pg.fetchval("SELECT count(*) FROM logs")
    anon = grpc.aio.insecure_channel(stack.grpc_address("auth"))
    gateway_to_auth = stack.client_channel("auth", "gateway")
    relay_to_auth = stack.client_channel("auth", "relay")
    relay_to_billing = stack.client_channel("billing", "relay")
    gateway_to_relay = stack.client_channel("relay", "gateway")
    billing_to_relay = stack.client_channel("relay", "billing")
    try:
        get = auth_pb2.GetChannelRequest(channel_id=tenant.channel_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth_pb2_grpc.AuthServiceStub(anon).GetChannel(get, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth_pb2_grpc.AuthServiceStub(gateway_to_auth).GetChannel(get, timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth_pb2_grpc.AuthServiceStub(gateway_to_auth).DisableChannel(
                auth_pb2.DisableChannelRequest(channel_id=tenant.channel_id), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (
            await pg.fetchval("SELECT status FROM channels WHERE id = $1", tenant.channel_id) == 1
        )
        # Only the gateway vouches for a client address.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth_pb2_grpc.AuthServiceStub(relay_to_auth).Authorize(
                auth_pb2.AuthorizeRequest(
                    api_key=tenant.key, model="gpt-4o-mini", client_ip="10.9.9.9"
                ),
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await billing_pb2_grpc.BillingServiceStub(relay_to_billing).DeleteLogs(
                billing_pb2.DeleteLogsRequest(before_timestamp=int(time.time()) + 3600),
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await billing_pb2_grpc.BillingServiceStub(relay_to_billing).ListLogs(
                billing_pb2.ListLogsRequest(), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await relay_pb2_grpc.RelayServiceStub(billing_to_relay).Call(
                relay_pb2.RelayRequest(channel_id=tenant.channel_id), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await pg.fetchval("SELECT count(*) FROM logs") >= before
        # The rightful callers.
        channel = await auth_pb2_grpc.AuthServiceStub(relay_to_auth).GetChannel(get, timeout=10)
        assert channel.id == tenant.channel_id and channel.keys
        models = await auth_pb2_grpc.AuthServiceStub(gateway_to_auth).ListModels(
            auth_pb2.ListModelsRequest(api_key=tenant.key, client_ip="127.0.0.1"), timeout=10
        )
        assert models.allowed and "gpt-4o-mini" in models.models
        answer = await relay_pb2_grpc.RelayServiceStub(gateway_to_relay).Call(
            relay_pb2.RelayRequest(), timeout=10
        )
        assert answer.HasField("error")  # no such channel: the relay itself said so
    finally:
        for ch in (anon, gateway_to_auth, relay_to_auth, relay_to_billing, gateway_to_relay):
            await ch.close()
        await billing_to_relay.close()


async def test_the_operator_certificate_is_root_in_admin_service_and_the_gateways_is_not(
    stack: Stack, pg: asyncpg.Pool
) -> None:
    """AdminService takes the ``admin`` identity without a session for root, even while root
    must still change its default password; the gateway's identity without a session, or the
    operator's with a session that is not one, is refused as before."""
    operator = stack.client_channel("auth", "admin")
    gateway = stack.client_channel("auth", "gateway")
    root_id = await pg.fetchval("SELECT min(id) FROM users WHERE role >= 100")
    forced = await pg.fetchval("SELECT must_change_password FROM users WHERE id = $1", root_id)
    try:
        await pg.execute("UPDATE users SET must_change_password = TRUE WHERE id = $1", root_id)
        me = await admin_pb2_grpc.AdminServiceStub(operator).GetSelf(empty_pb2.Empty(), timeout=10)
        assert (me.id, me.role) == (root_id, 100)
        # A root-only RPC and an admin one go through.
        users = await admin_pb2_grpc.AdminServiceStub(operator).ListUsers(
            admin_pb2.ListRequest(), timeout=10
        )
        assert users.total >= 1
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(operator).AdjustQuota(
                admin_pb2.QuotaAdjustment(target="user", id=root_id), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # neither add nor set
        assert "exactly one" in (err.value.details() or "")
        for channel, metadata in [(gateway, None), (operator, PROBE_METADATA)]:
            for call in (
                admin_pb2_grpc.AdminServiceStub(channel).GetSelf(
                    empty_pb2.Empty(),
                    timeout=10,
                    metadata=metadata,
                ),
                admin_pb2_grpc.AdminServiceStub(channel).AdjustQuota(
                    admin_pb2.QuotaAdjustment(target="user", id=root_id, add=1),
                    timeout=10,
                    metadata=metadata,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
                assert "not logged in" in (err.value.details() or "")
    finally:
        await pg.execute(
            "UPDATE users SET must_change_password = $2 WHERE id = $1", root_id, forced
        )
        await operator.close()
        await gateway.close()
