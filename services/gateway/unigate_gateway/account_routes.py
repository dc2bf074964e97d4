"""What a key may see about itself: its models (``/v1/models``) and, for chat front-ends
built for One API, its balance (``/dashboard/billing/subscription`` and ``/usage``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate import errors
from unigate.pricing import QUOTA_PER_USD
from unigate.request_ids import new_request_id
from unigate_gateway.proxy import Proxy, error_response
from unigate_gateway.requests import bearer_key

# What One API reports as the limit of an unlimited key (USD).
UNLIMITED_USD = 100_000_000.0


def _json(body: object, request_id: str) -> Response:
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"X-Request-Id": request_id}
    )


def _model_object(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "unigate"}


def account_routes(proxy: Callable[[], Proxy], client_ip: Callable[[Request], str]) -> list[Route]:
    def keyed(
        handler: Callable[[Request, str], Awaitable[object]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # Ours, as on every /v1 answer (these calls make no ledger row).
            request_id = new_request_id()
            try:
                api_key = bearer_key(request.headers.get("authorization"))
                if not api_key:
                    raise errors.AuthenticationFailed(
                        "You didn't provide an API key.", code="missing_api_key"
                    )
                body = await handler(request, api_key)
            except errors.ClientFacingError as err:
                return error_response(err, request_id)
            return _json(body, request_id)

        return endpoint

    async def models(request: Request, api_key: str) -> object:
        names = await proxy().list_models(api_key, client_ip(request))
        return {"object": "list", "data": [_model_object(n) for n in names]}

    async def model(request: Request, api_key: str) -> object:
        wanted = request.path_params["model"]
        if wanted not in await proxy().list_models(api_key, client_ip(request)):
            raise errors.NotFound(
                f"The model '{wanted}' does not exist", code="model_not_found", param="model"
            )
        return _model_object(wanted)

    async def subscription(request: Request, api_key: str) -> object:
        info = await proxy().key_info(api_key, client_ip(request))
        # As One API: the key's whole allowance (left plus spent), or a huge number.
        limit = (
            UNLIMITED_USD
            if info.unlimited_quota
            else (info.remain_quota + info.used_quota) / QUOTA_PER_USD
        )
        return {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": limit,
            "hard_limit_usd": limit,
            "system_hard_limit_usd": limit,
            "access_until": max(info.expired_time, 0),
        }

    async def usage(request: Request, api_key: str) -> object:
        info = await proxy().key_info(api_key, client_ip(request))
        # OpenAI's (and One API's) unit here is cents.
        return {"object": "list", "total_usage": info.used_quota / QUOTA_PER_USD * 100}

    routes = [
        Route("/v1/models", keyed(models), methods=["GET"]),
        Route("/v1/models/{model:path}", keyed(model), methods=["GET"]),
    ]
    for prefix in ("", "/v1"):
        routes.append(Route(f"{prefix}/dashboard/billing/subscription", keyed(subscription)))
        routes.append(Route(f"{prefix}/dashboard/billing/usage", keyed(usage)))
    return routes
