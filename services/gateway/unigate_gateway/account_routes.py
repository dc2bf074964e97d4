"""What a key may see about itself: its models (``/v1/models``, in Anthropic's shape for
Anthropic clients: ``anthropic_models``) and, for chat front-ends built for One API, its
balance (``/dashboard/billing/subscription`` and ``/usage``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate import errors
from unigate.pricing import QUOTA_PER_USD
from unigate.request_ids import new_request_id
from unigate_gateway.anthropic_api import MESSAGES, request_id_headers
from unigate_gateway.anthropic_models import model_object, model_page, wants_anthropic
from unigate_gateway.proxy import Proxy, error_response
from unigate_gateway.requests import bearer_key

# What One API reports as the limit of an unlimited key (USD).
UNLIMITED_USD = 100_000_000.0


def _json(body: object, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _model_object(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "unigate"}


# Google's ListModels / GetModel (model None: the list), for requests keyed Google's way.
GoogleModels = Callable[[Request, str | None], Awaitable[Response]]


def keyed_by_google(request: Request) -> bool:
    """A request carrying its key only as Google's clients do (``x-goog-api-key`` or
    ``?key=``), which therefore reads only Google's shapes."""
    return "authorization" not in request.headers and (
        "x-goog-api-key" in request.headers or "key" in request.query_params
    )


def account_routes(
    proxy: Callable[[], Proxy],
    client_ip: Callable[[Request], str],
    google: GoogleModels | None = None,
) -> list[Route]:
    def keyed(
        handler: Callable[[Request, str], Awaitable[object]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # Ours, as on every /v1 answer (these calls make no ledger row).
            request_id = new_request_id()
            # An Anthropic client's key may come in x-api-key; its errors and request id are
            # given as on the Messages routes.
            shape = MESSAGES if wants_anthropic(request.headers) else ""
            headers = request_id_headers(shape, request_id)
            try:
                api_key = bearer_key(request.headers.get("authorization"))
                if not api_key and shape:
                    api_key = request.headers.get("x-api-key", "").strip()
                if not api_key:
                    raise errors.AuthenticationFailed(
                        "You didn't provide an API key.", code="missing_api_key"
                    )
                body = await handler(request, api_key)
            except errors.ClientFacingError as err:
                response = error_response(err, request_id, shape)
                response.headers.update(headers)
                return response
            return _json(body, headers)

        return endpoint

    async def models(request: Request, api_key: str) -> object:
        names = await proxy().list_models(api_key, client_ip(request))
        if wants_anthropic(request.headers):
            return model_page(names, request.query_params)
        return {"object": "list", "data": [_model_object(n) for n in names]}

    async def model(request: Request, api_key: str) -> object:
        wanted = request.path_params["model"]
        if wanted not in await proxy().list_models(api_key, client_ip(request)):
            raise errors.NotFound(
                f"The model '{wanted}' does not exist", code="model_not_found", param="model"
            )
        return model_object(wanted) if wants_anthropic(request.headers) else _model_object(wanted)

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

    def or_google(
        openai_shaped: Callable[[Request], Awaitable[Response]], one: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if google is not None and keyed_by_google(request):
                return await google(request, request.path_params["model"] if one else None)
            return await openai_shaped(request)

        return endpoint

    routes = [
        Route("/v1/models", or_google(keyed(models), False), methods=["GET"]),
        Route("/v1/models/{model:path}", or_google(keyed(model), True), methods=["GET"]),
    ]
    for prefix in ("", "/v1"):
        routes.append(Route(f"{prefix}/dashboard/billing/subscription", keyed(subscription)))
        routes.append(Route(f"{prefix}/dashboard/billing/usage", keyed(usage)))
    return routes
