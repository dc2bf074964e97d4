"""GitHub's OAuth app web flow (docs.github.com: "Authorizing OAuth apps", "Troubleshooting
authorization request errors", "… access token request errors"; REST "Get the authenticated
user").

* ``GET /login/oauth/authorize``: an unknown ``client_id`` is a 404 page; a ``redirect_uri``
  that is not the registered callback (nor under it: same scheme, host and port, a
  subdirectory of its path) redirects to the registered callback with
  ``error=redirect_uri_mismatch``; a ``code_challenge_method`` other than S256 is refused.
  Else a code (single-use, 10 minutes) goes to the redirect URI with the ``state``.
* ``POST /login/oauth/access_token``: errors in an HTTP 200 body as GitHub sends them
  (``incorrect_client_credentials``, ``redirect_uri_mismatch`` when the URI differs from the
  authorization's, ``bad_verification_code`` for an unknown, used or expired code or a PKCE
  verifier that does not match); JSON when ``Accept: application/json``, else form-encoded.
* ``GET /user`` (the API host; one app serves both): ``Authorization: Bearer|token``; no
  ``User-Agent`` is a 403; a bad token 401 ``{"message": "Bad credentials"}``.

``app.state``: ``clients`` (client_id → (secret, callback)), ``person`` (who logs in:
``{"id", "login", "name", "email"}``), ``grants`` (``code_ttl`` may be lowered).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from unigate_sim.identity.grants import Grant, Grants, verifier_matches

DOCS = "https://docs.github.com"


def _under(callback: str, uri: str) -> bool:
    a, b = urlsplit(callback), urlsplit(uri)
    return (
        (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
        and (b.path == a.path or b.path.startswith(a.path.rstrip("/") + "/"))
        and ".." not in b.path
    )


def _with_query(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def create_github_app(clients: dict[str, tuple[str, str]]) -> Starlette:
    grants = Grants(code_ttl=600, token_ttl=8 * 3600)

    async def authorize(request: Request) -> Response:
        q = request.query_params
        client = clients.get(q.get("client_id", ""))
        if client is None:
            return PlainTextResponse("Not Found", 404)
        callback = client[1]
        redirect_uri = q.get("redirect_uri") or callback
        state = q.get("state", "")
        if not _under(callback, redirect_uri):
            return RedirectResponse(
                _with_query(
                    callback,
                    {
                        "error": "redirect_uri_mismatch",
                        "error_description": "The redirect_uri is not associated with this"
                        " application.",
                        "state": state,
                    },
                ),
                302,
            )
        method = q.get("code_challenge_method", "S256" if q.get("code_challenge") else "")
        if q.get("code_challenge") and method != "S256":
            return PlainTextResponse("code_challenge_method must be S256", 400)
        person = request.app.state.person
        if person is None:
            return PlainTextResponse("nobody is signed in at the simulator", 401)
        code = grants.issue_code(
            Grant(q["client_id"], redirect_uri, q.get("code_challenge", ""), method, person)
        )
        return RedirectResponse(_with_query(redirect_uri, {"code": code, "state": state}), 302)

    def answer(request: Request, body: dict[str, Any]) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return Response(orjson.dumps(body), media_type="application/json")
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")

    def error(request: Request, name: str, description: str, uri: str) -> Response:
        return answer(
            request, {"error": name, "error_description": description, "error_uri": DOCS + uri}
        )

    async def access_token(request: Request) -> Response:
        raw = await request.body()
        form = dict(parse_qsl(raw.decode(errors="replace"))) | dict(request.query_params)
        client = clients.get(form.get("client_id", ""))
        if client is None or client[0] != form.get("client_secret"):
            return error(
                request,
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
                "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
            )
        grant, _ = grants.redeem(form.get("code", ""))
        bad_code = (
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
        )
        if grant is None or grant.client_id != form["client_id"]:
            return error(request, *bad_code)
        if form.get("redirect_uri") and form["redirect_uri"] != grant.redirect_uri:
            return error(
                request,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch2",
            )
        if not verifier_matches(grant, form.get("code_verifier", "")):
            return error(request, *bad_code)
        token = grants.issue_token(form["code"], grant.person, "gho_")
        return answer(
            request, {"access_token": token, "token_type": "bearer", "scope": "read:user"}
        )

    async def user(request: Request) -> Response:
        if not request.headers.get("user-agent"):
            return PlainTextResponse(
                "Request forbidden by administrative rules. Please make sure your request has"
                " a User-Agent header.",
                403,
            )
        person = grants.person_of(request.headers.get("authorization", ""))
        if person is None:
            return Response(
                orjson.dumps(
                    {
                        "message": "Bad credentials",
                        "documentation_url": DOCS + "/rest",
                        "status": "401",
                    }
                ),
                401,
                media_type="application/json",
            )
        body = {"login": person["login"], "id": person["id"], "type": "User", **person}
        return Response(orjson.dumps(body), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/login/oauth/authorize", authorize, methods=["GET"]),
            Route("/login/oauth/access_token", access_token, methods=["POST"]),
            Route("/user", user, methods=["GET"]),
        ]
    )
    app.state.clients = clients
    app.state.person = None
    app.state.grants = grants
    return app
