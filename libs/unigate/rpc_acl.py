"""Who may call what: every internal RPC against the calling SERVICE's identity.

The identity is the ``spiffe://unigate/<identity>`` URI SAN of the client certificate the
TLS handshake verified against the internal CA (``unigate.certs``); gRPC exposes it as the
``peer_spiffe_id`` property of the call's auth context. A server refuses, before any handler
runs, a caller with no such identity (UNAUTHENTICATED) and one the table below does not list
for the method (PERMISSION_DENIED). A method missing from the table is refused to everyone.
Callers without a certificate, or with one from another CA, never get this far: the
handshake fails (``grpcutil.server_credentials`` requires and verifies client certificates).

This is the calling service's identity, not the end user's: ``AdminService`` still checks
the user's session or access token in the call's metadata; only the operator's identity
(``admin``) with neither acts as root there (``unigate_auth.admin.rpc``).

The table is the code's own call graph (``docs/security.md`` explains each line):
gateway → auth (Authorize, ListModels, GetKeyInfo, the stored responses of the Responses API,
AdminService for ``/api``), gateway → relay (Call, CallMany, Stream, StreamMany), gateway →
auth (MessageBatchCall: Anthropic's Message Batches, whose upstream calls auth makes), auth →
relay (MessageBatch), gateway → billing (the ``/api/log`` reads; DeleteLogs for
``DELETE /api/log/``, which auth has confirmed is an admin's); relay → auth (GetChannel,
DisableChannel: its channel configuration and health reports); auth → relay (Call: the
channel tester's one-token request); auth → billing (RedeemCode, CreateRedemptions:
redemption codes, whose claim billing owns); the operator (``admin``: the ``unigate`` CLI, grpcurl)
→ billing reads, redemption codes and dead letters, and AdminService (which checks the
user, or takes the operator without one for root). Health and reflection: anyone
holding a unigate certificate.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from unigate.certs import SPIFFE_PREFIX
from unigate.v1 import admin_pb2, auth_pb2, billing_pb2, relay_pb2

GATEWAY, AUTH, RELAY, BILLING, ADMIN = "gateway", "auth", "relay", "billing", "admin"
ANYONE = frozenset({GATEWAY, AUTH, RELAY, BILLING, ADMIN})


def method_names(file: Any, service: str) -> list[str]:
    """The full method paths of ``service`` as gRPC dispatches them: ``/pkg.Service/Method``."""
    svc = file.services_by_name[service]
    return [f"/{svc.full_name}/{m.name}" for m in svc.methods]


def _every(file: Any, service: str, callers: Iterable[str]) -> dict[str, frozenset[str]]:
    return dict.fromkeys(method_names(file, service), frozenset(callers))


def _auth(method: str) -> str:
    return f"/unigate.v1.AuthService/{method}"


def _relay(method: str) -> str:
    return f"/unigate.v1.RelayService/{method}"


def _billing(method: str) -> str:
    return f"/unigate.v1.BillingService/{method}"


ALLOWED: Mapping[str, frozenset[str]] = {
    _auth("Authorize"): frozenset({GATEWAY}),
    _auth("AuthorizeMany"): frozenset({GATEWAY}),
    _auth("ListModels"): frozenset({GATEWAY}),
    _auth("GetKeyInfo"): frozenset({GATEWAY}),
    # A finished request's real cost, lowering its reservation at once (the gateway's proxy).
    _auth("Release"): frozenset({GATEWAY}),
    # The Responses API's stored responses (the gateway's /v1/responses routes).
    _auth("SaveStoredResponse"): frozenset({GATEWAY}),
    _auth("GetStoredResponse"): frozenset({GATEWAY}),
    _auth("DeleteStoredResponse"): frozenset({GATEWAY}),
    # One API's /v1/oneapi/proxy/:channel/* (admins' keys): the gateway's check and call.
    _auth("AuthorizeChannelProxy"): frozenset({GATEWAY}),
    _relay("ProxyCall"): frozenset({GATEWAY}),
    # Anthropic's Message Batches: the gateway's /v1/messages/batches routes ask auth, which
    # keeps the batches and makes their upstream calls (and its poller's) through the relay.
    _auth("MessageBatchCall"): frozenset({GATEWAY}),
    _relay("MessageBatch"): frozenset({AUTH}),
    _auth("GetChannel"): frozenset({RELAY}),
    _auth("DisableChannel"): frozenset({RELAY}),
    **_every(admin_pb2.DESCRIPTOR, "AdminService", {GATEWAY, ADMIN}),
    _relay("Call"): frozenset({GATEWAY, AUTH}),
    _relay("Realtime"): frozenset({GATEWAY}),
    _relay("CallMany"): frozenset({GATEWAY}),
    _relay("Stream"): frozenset({GATEWAY}),
    _relay("StreamMany"): frozenset({GATEWAY}),
    _billing("ListLogs"): frozenset({GATEWAY, ADMIN}),
    _billing("ExportLogs"): frozenset({GATEWAY, ADMIN}),
    _billing("UsageStats"): frozenset({GATEWAY, ADMIN}),
    _billing("DeleteLogs"): frozenset({GATEWAY}),
    # The ledger audit: root's GET /api/audit (through the gateway) and `unigate audit`.
    _billing("Audit"): frozenset({GATEWAY, ADMIN}),
    # Redemption codes: billing owns the exactly-once claim; auth's AdminService (which has
    # checked the user) redeems and mints through it, and so does `unigate redemption`.
    _billing("RedeemCode"): frozenset({AUTH, ADMIN}),
    _billing("CreateRedemptions"): frozenset({AUTH, ADMIN}),
    # `unigate deadletter list|replay`: the operator's alone.
    _billing("ListDeadLetters"): frozenset({ADMIN}),
    _billing("ReplayDeadLetters"): frozenset({ADMIN}),
    **_every(health_pb2.DESCRIPTOR, "Health", ANYONE),
    **_every(reflection_pb2.DESCRIPTOR, "ServerReflection", ANYONE),
}

#: The services whose every method the table must decide (a test holds it to that).
SERVED = {
    "auth": [(auth_pb2.DESCRIPTOR, "AuthService"), (admin_pb2.DESCRIPTOR, "AdminService")],
    "relay": [(relay_pb2.DESCRIPTOR, "RelayService")],
    "billing": [(billing_pb2.DESCRIPTOR, "BillingService")],
}

_NOBODY: frozenset[str] = frozenset()


def caller_identity(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The unigate identity the peer's verified certificate carries, if any."""
    ids = context.auth_context().get("peer_spiffe_id")
    if not ids:
        return None
    uri = next(iter(ids)).decode(errors="replace")
    return uri[len(SPIFFE_PREFIX) :] if uri.startswith(SPIFFE_PREFIX) else None


def _refusal(
    context: grpc.aio.ServicerContext[Any, Any], method: str, allowed: frozenset[str]
) -> tuple[grpc.StatusCode, str] | None:
    identity = caller_identity(context)
    if identity in allowed:
        return None
    if identity is None:
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            "no unigate service identity in the client certificate",
        )
    return grpc.StatusCode.PERMISSION_DENIED, f"{identity} may not call {method}"


Behavior = Callable[..., Any]
ReqT = TypeVar("ReqT")
RespT = TypeVar("RespT")
# Generic only in the type stubs, hence a string.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _guard(behavior: Behavior, method: str, allowed: frozenset[str]) -> Behavior:
    """``behavior`` (a grpc.aio handler of any kind) behind the identity check."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            refused = _refusal(context, method, allowed)
            if refused is not None:
                await context.abort(*refused)
            async for item in behavior(request, context):
                yield item

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        refused = _refusal(context, method, allowed)
        if refused is not None:
            await context.abort(*refused)
        result = behavior(request, context)
        return await result if isinstance(result, Awaitable) else result

    return unary


def guard_handler(handler: Handler, method: str, allowed: frozenset[str]) -> Handler:
    kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
    replaced = {
        k: _guard(getattr(handler, k), method, allowed) for k in kinds if getattr(handler, k)
    }
    # grpc's handler is a namedtuple (grpc._utilities.RpcMethodHandler).
    guarded: Handler = handler._replace(**replaced)  # type: ignore[attr-defined]
    return guarded


class CallerCheck(grpc.aio.ServerInterceptor):
    """Refuses calls whose caller the table does not allow, before the handler runs.

    Per call this costs the interceptor hop, one dict lookup for the method's guarded
    handler (built once per method) and, in it, the auth context's identity and one
    set lookup. A multiplexed stream (AuthorizeMany, CallMany, StreamMany) is checked once, when it
    opens, not per message."""

    def __init__(self, allowed: Mapping[str, frozenset[str]] = ALLOWED) -> None:
        self._allowed = allowed
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[ReqT, RespT] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[ReqT, RespT] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method: gRPC answers UNIMPLEMENTED
        method: str = handler_call_details.method
        known = self._guarded.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = guard_handler(handler, method, self._allowed.get(method, _NOBODY))
        self._guarded[method] = (handler, guarded)
        return guarded
