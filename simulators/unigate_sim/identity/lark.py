"""Lark/Feishu web-app login (open.feishu.cn: 获取授权码 ``/open-apis/authen/v1/authorize``,
获取 user_access_token ``/open-apis/authen/v2/oauth/token``, 获取用户信息
``/open-apis/authen/v1/user_info``). One app serves both hosts (accounts. and open.).

* authorize: an unknown ``client_id`` (App ID) or a ``redirect_uri`` not registered for it
  is a 400 page; else a code (valid 5 minutes, single-use) to the redirect URI with ``state``.
* token: ``Content-Type: application/json`` only; ``grant_type`` authorization_code,
  ``client_id``/``client_secret``, ``code``, ``redirect_uri`` (must be the authorization's),
  ``code_verifier`` when a challenge was sent. RFC 6749 answers: success ``{"code": 0,
  "access_token", "expires_in", "token_type": "Bearer", "scope"}``; refusals HTTP 400/401
  ``{"code": <non-zero>, "error", "error_description"}`` (the numeric codes here are the
  simulator's).
* user_info: ``Authorization: Bearer <user_access_token>``; ``{"code": 0, "msg": "success",
  "data": {"name", "open_id", "union_id", ...}}``; an invalid or expired token: 401 with a
  non-zero ``code``.

``app.state``: ``clients`` (App ID → (App Secret, [redirect URIs])), ``person``
(``{"open_id", "union_id", "name"}``), ``grants``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from unigate_sim.identity.grants import Grant, Grants, verifier_matches


def create_lark_app(clients: dict[str, tuple[str, list[str]]]) -> Starlette:
    grants = Grants(code_ttl=300, token_ttl=7200)

    async def authorize(request: Request) -> Response:
        q = request.query_params
        client = clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        if client is None or redirect_uri not in client[1]:
            return PlainTextResponse("invalid client_id or redirect_uri", 400)
        person = request.app.state.person
        if person is None:
            return PlainTextResponse("nobody is signed in at the simulator", 401)
        code = grants.issue_code(
            Grant(
                q["client_id"],
                redirect_uri,
                q.get("code_challenge", ""),
                q.get("code_challenge_method", "plain"),
                person,
            )
        )
        params = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{redirect_uri}?{params}", 302)

    def refuse(code: int, error: str, description: str, status: int = 400) -> Response:
        return JSONResponse(
            {"code": code, "error": error, "error_description": description}, status
        )

    async def token(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return refuse(20001, "invalid_request", "Content-Type must be application/json")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return refuse(20001, "invalid_request", "the body is not JSON")
        if not isinstance(body, dict) or body.get("grant_type") != "authorization_code":
            return refuse(20001, "unsupported_grant_type", "grant_type must be authorization_code")
        client = clients.get(str(body.get("client_id", "")))
        if client is None or client[0] != body.get("client_secret"):
            return refuse(20002, "invalid_client", "client_id or client_secret is wrong", 401)
        code = str(body.get("code", ""))
        grant, why = grants.redeem(code)
        if grant is None or grant.client_id != body["client_id"]:
            return refuse(20003, "invalid_grant", f"the code is {why or 'not this app'}")
        if body.get("redirect_uri") != grant.redirect_uri:
            return refuse(20003, "invalid_grant", "redirect_uri does not match")
        if not verifier_matches(grant, str(body.get("code_verifier", ""))):
            return refuse(20003, "invalid_grant", "code_verifier does not match")
        access = grants.issue_token(code, grant.person, "u-")
        return JSONResponse(
            {
                "code": 0,
                "access_token": access,
                "expires_in": int(grants.token_ttl),
                "token_type": "Bearer",
                "scope": "",
            }
        )

    async def user_info(request: Request) -> Response:
        person = grants.person_of(request.headers.get("authorization", ""))
        if person is None:
            return JSONResponse(
                {"code": 99991668, "msg": "Invalid access token for authorization."}, 401
            )
        return JSONResponse({"code": 0, "msg": "success", "data": person})

    app = Starlette(
        routes=[
            Route("/open-apis/authen/v1/authorize", authorize, methods=["GET"]),
            Route("/open-apis/authen/v2/oauth/token", token, methods=["POST"]),
            Route("/open-apis/authen/v1/user_info", user_info, methods=["GET"]),
        ]
    )
    app.state.clients = clients
    app.state.person = None
    app.state.grants = grants
    return app
