"""One API's channel proxy, ``/v1/oneapi/proxy/{channel}/{path}``: an administrator's key
sends a raw request (any method, any path) to one channel's base URL, with the channel's key
set by the relay; the provider's answer comes back as it is.

Unlike One API (which lets any key name a channel there), only an administrator's key may:
this reaches past routing, model lists and prices. The call is not priced (One API does not
meter it either), but it reached a provider, so it has its ledger row like every such call:
quota 0, endpoint ``oneapi.proxy``, the status the provider answered."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from starlette.requests import Request
from starlette.responses import Response

from unigate import errors
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.request_ids import new_request_id
from unigate.settings import relay_for
from unigate.v1 import auth_pb2, auth_pb2_grpc, common_pb2, events_pb2, relay_pb2
from unigate_gateway.proxy import RelayClient, error_response
from unigate_gateway.publisher import UsagePublisher
from unigate_gateway.requests import bearer_key

T = TypeVar("T")

ENDPOINT = "oneapi.proxy"
# Client headers that never travel: credentials (the channel's key replaces them) and
# hop-by-hop or transport headers the relay's own connection sets.
_DROPPED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "accept-encoding",
        "upgrade",
        "te",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-csrf-token",
    }
)


def forwarded_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}


class ChannelProxy:
    def __init__(
        self,
        auth: auth_pb2_grpc.AuthServiceStub,
        relays: dict[str, RelayClient],
        publisher: UsagePublisher,
        *,
        authorize_timeout: float,
        relay_timeout: float,
    ) -> None:
        self._auth = auth
        self._relays = relays
        self._publisher = publisher
        self._authorize_timeout = authorize_timeout
        self._relay_timeout = relay_timeout

    async def handle(self, request: Request, client_ip: str) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        try:
            api_key = bearer_key(request.headers.get("authorization"))
            if not api_key:
                raise errors.AuthenticationFailed(
                    "You didn't provide an API key.", code="missing_api_key"
                )
            channel_id = int(request.path_params["channel_id"])
            decision = await self._ask(
                self._auth.AuthorizeChannelProxy(
                    auth_pb2.ChannelProxyAuthRequest(
                        api_key=api_key, client_ip=client_ip, channel_id=channel_id
                    ),
                    timeout=self._authorize_timeout,
                )
            )
            if not decision.allowed:
                raise errors.ClientFacingError.from_proto(decision.error)
            relay = relay_for(self._relays, decision.family)
            if relay is None:
                raise errors.ClientFacingError(
                    "No relay serves this channel's type.", status=503, code="relay_unavailable"
                )
            path = "/" + request.path_params["target"]
            if request.url.query:
                path += "?" + request.url.query
            body = await request.body()
            result = await self._ask(
                relay.stub.ProxyCall(
                    relay_pb2.ProxyRequest(
                        request_id=request_id,
                        channel_id=channel_id,
                        channel_type=decision.channel_type,
                        config_version=decision.config_version,
                        method=request.method,
                        path=path,
                        headers=forwarded_headers(request),
                        body=body,
                    ),
                    timeout=self._relay_timeout,
                )
            )
        except errors.ClientFacingError as err:
            return error_response(err, request_id)
        if result.HasField("error"):
            failed = errors.ClientFacingError.from_proto(result.error.error)
            response = error_response(failed, request_id)
        else:
            # The provider's own request id is not the one the client may look its row up by.
            headers = {k: v for k, v in result.headers.items() if k.lower() != "x-request-id"}
            response = Response(
                result.body,
                status_code=result.http_status,
                headers={**headers, "X-Request-Id": request_id},
            )
        self._publish(decision, request_id, channel_id, response.status_code, started, client_ip)
        return response

    async def _ask(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise errors.ClientFacingError(
                "The gateway could not reach a service it needs.",
                status=503,
                code="service_unavailable",
            ) from exc

    def _publish(
        self,
        decision: auth_pb2.ChannelProxyAuth,
        request_id: str,
        channel_id: int,
        status: int,
        started: float,
        client_ip: str,
    ) -> None:
        self._publisher.publish(
            events_pb2.UsageEvent(
                schema_version=USAGE_SCHEMA_VERSION,
                request_id=request_id,
                user_id=decision.user_id,
                token_id=decision.token_id,
                token_name=decision.token_name,
                group=decision.group,
                channel_id=channel_id,
                endpoint=ENDPOINT,
                usage=common_pb2.Usage(),
                pricing=auth_pb2.Pricing(),
                quota=0,
                status_code=status,
                latency_ms=int((time.perf_counter() - started) * 1000),
                client_ip=client_ip,
                channels_tried=[channel_id],
                created_at_ms=int(time.time() * 1000),
            )
        )
