"""The account-balance APIs of One API's OpenAI resellers, as One API's
``controller/channel-billing.go`` calls and parses them (the only public description of these
services' account APIs; their model APIs are OpenAI's and ``unigate_sim.openai`` serves them):

- CloseAI, API2GPT, AIGC2D: ``GET /dashboard/billing/credit_grants`` with ``Authorization:
  Bearer <key>``, OpenAI's old credit-grants answer (``total_granted``, ``total_used`` and
  ``total_available``, API2GPT ``total_remaining`` instead); a missing or unknown key is
  OpenAI's 401 ``invalid_api_key``.
- OpenAI-SB: ``GET /sb-api/user/status?api_key=<key>`` → ``{"msg", "data": {"credit": "<a
  decimal string>"}}``; an unknown key is answered 200 with ``data`` null and the reason in
  ``msg`` (One API reads a missing ``data`` as the failure and shows ``msg``).
- AIProxy (on aiproxy.io): ``GET /api/report/getUserOverview`` with the key in an ``Api-Key``
  header (not Bearer) → ``{"success", "message", "error_code", "data": {"totalPoints"}}``; an
  unknown key is answered 200 with ``success`` false and an error code.

Anything else — another path, another method — is a 404/405. The balance is
``app.state.balance`` (a test may change it); the keys ``app.state.api_keys``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from unigate_sim.openai.auth import authenticate
from unigate_sim.openai.errors import OpenAIError

#: Reseller → the balance a fresh simulator reports.
DEFAULT_BALANCES: dict[str, float] = {
    "closeai": 18.25,
    "api2gpt": 7.5,
    "aigc2d": 42.0,
    "openai-sb": 36.1234,
    "aiproxy": 25_000.0,
}
_GRANTED_EXTRA = 5.0  # what the account has used: granted = balance + used

Handler = Callable[[Request], Awaitable[Response]]


def _keys(request: Request) -> frozenset[str]:
    return frozenset(request.app.state.api_keys)


def _credit_grants(remaining_field: str) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            authenticate(request, _keys(request))
        except OpenAIError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        balance = float(request.app.state.balance)
        return JSONResponse(
            {
                "object": "credit_summary",
                "total_granted": balance + _GRANTED_EXTRA,
                "total_used": _GRANTED_EXTRA,
                remaining_field: balance,
                "grants": {"object": "list", "data": []},
            }
        )

    return handler


async def _openai_sb_status(request: Request) -> Response:
    key = request.query_params.get("api_key", "")
    if not key:
        return JSONResponse({"code": 400, "msg": "api_key is required", "data": None})
    if key not in _keys(request):
        return JSONResponse({"code": 401, "msg": "api_key not found", "data": None})
    return JSONResponse(
        {"code": 0, "msg": "ok", "data": {"credit": f"{request.app.state.balance:.4f}"}}
    )


async def _aiproxy_overview(request: Request) -> Response:
    key = request.headers.get("api-key", "")
    if key not in _keys(request):
        # Bearer is not how AIProxy's report API takes a key: it is refused like none at all.
        return JSONResponse(
            {"success": False, "message": "Invalid Api-Key", "error_code": 401, "data": None}
        )
    return JSONResponse(
        {
            "success": True,
            "message": "",
            "error_code": 0,
            "data": {"totalPoints": float(request.app.state.balance)},
        }
    )


_ROUTES: dict[str, tuple[str, Handler]] = {
    "closeai": ("/dashboard/billing/credit_grants", _credit_grants("total_available")),
    "aigc2d": ("/dashboard/billing/credit_grants", _credit_grants("total_available")),
    "api2gpt": ("/dashboard/billing/credit_grants", _credit_grants("total_remaining")),
    "openai-sb": ("/sb-api/user/status", _openai_sb_status),
    "aiproxy": ("/api/report/getUserOverview", _aiproxy_overview),
}
RESELLERS = tuple(_ROUTES)


def create_reseller_billing_app(reseller: str, api_keys: set[str]) -> Starlette:
    """The balance API of ``reseller`` (one of :data:`RESELLERS`) for ``api_keys``."""
    path, handler = _ROUTES[reseller]
    app = Starlette(routes=[Route(path, handler, methods=["GET"])])
    app.state.api_keys = set(api_keys)
    app.state.balance = DEFAULT_BALANCES[reseller]
    return app
