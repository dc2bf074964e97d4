"""An OpenID Connect provider (OpenID Connect Core 1.0, Discovery 1.0; RFC 6749, RFC 7636).

* ``GET /.well-known/openid-configuration`` and ``GET /jwks`` (an RSA key the simulator
  generates at start; ``kid`` in every token header).
* ``GET /authorize``: ``client_id`` registered and ``redirect_uri`` exactly one of its
  registered URIs, else a 400 page (an unverified URI is never redirected to); then errors
  go to the redirect URI (``unsupported_response_type`` unless ``code``, ``invalid_scope``
  without ``openid``, ``invalid_request`` without an S256 ``code_challenge``: this provider
  requires PKCE). Else a code (single-use, 60 s) with the ``state``.
* ``POST /token``: form-encoded only; the client authenticates by HTTP Basic or in the form
  (not both; ``invalid_client``, 401); ``grant_type`` ``authorization_code``; ``invalid_grant``
  for an unknown, expired or reused code (a reuse also revokes the tokens the code gave), a
  code of another client, a ``redirect_uri`` not the authorization's, a ``code_verifier``
  that does not match. Answers ``access_token``, ``id_token`` (RS256: iss, sub, aud, exp,
  iat, nonce, name), ``token_type`` Bearer, ``expires_in``; ``Cache-Control: no-store``.
* ``GET /userinfo``: Bearer token; unknown or expired: 401 with ``WWW-Authenticate: Bearer
  error="invalid_token"``.

``app.state``: ``clients`` (client_id → (secret, [redirect URIs])), ``person``
(``{"sub", "name", ...}``), ``grants``, ``id_token_faults`` (claims to override in the next
ID token, or ``{"sign_with": "other-key"}`` to sign it with a key not in the JWKS), for tests.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from unigate_sim.identity.grants import Grant, Grants, verifier_matches

ID_TOKEN_SECONDS = 300


def _issuer(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def create_oidc_app(clients: dict[str, tuple[str, list[str]]]) -> Starlette:
    grants = Grants(code_ttl=60, token_ttl=300)
    key = RSAKey.generate_key(2048, parameters={"kid": "sim-1", "use": "sig", "alg": "RS256"})
    other_key = RSAKey.generate_key(2048, parameters={"kid": "sim-1", "alg": "RS256"})

    async def discovery(request: Request) -> Response:
        base = _issuer(request)
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"],
            }
        )

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    async def authorize(request: Request) -> Response:
        q = request.query_params
        client = clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        if client is None or redirect_uri not in client[1]:
            return PlainTextResponse("invalid client_id or redirect_uri", 400)
        state = q.get("state", "")

        def back(params: dict[str, str]) -> Response:
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", 302)

        if q.get("response_type") != "code":
            return back({"error": "unsupported_response_type", "state": state})
        if "openid" not in q.get("scope", "").split():
            return back({"error": "invalid_scope", "state": state})
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return back(
                {
                    "error": "invalid_request",
                    "error_description": "code_challenge with method S256 is required",
                    "state": state,
                }
            )
        person = request.app.state.person
        if person is None:
            return back({"error": "login_required", "state": state})
        code = grants.issue_code(
            Grant(
                q["client_id"],
                redirect_uri,
                q["code_challenge"],
                "S256",
                person,
                nonce=q.get("nonce", ""),
            )
        )
        return back({"code": code, "state": state})

    def token_error(name: str, description: str, status: int = 400) -> Response:
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return JSONResponse({"error": name, "error_description": description}, status, headers)

    async def token(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            return token_error("invalid_request", "the body must be form-encoded")
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        basic = request.headers.get("authorization", "")
        if basic and ("client_secret" in form):
            return token_error("invalid_request", "more than one client authentication method")
        if basic:
            scheme, _, encoded = basic.partition(" ")
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                return token_error("invalid_client", "bad Basic credentials", 401)
            if scheme.lower() != "basic":
                return token_error("invalid_client", "unsupported authentication", 401)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = clients.get(client_id)
        if client is None or client[0] != secret:
            return token_error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return token_error("unsupported_grant_type", "only authorization_code")
        code = form.get("code", "")
        grant, why = grants.redeem(code)
        if grant is None:
            return token_error("invalid_grant", f"the code is {why}")
        if grant.client_id != client_id:
            return token_error("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            return token_error("invalid_grant", "redirect_uri does not match the authorization")
        if not verifier_matches(grant, form.get("code_verifier", "")):
            return token_error("invalid_grant", "PKCE verification failed")
        access = grants.issue_token(code, grant.person, "sim-at-")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": _issuer(request),
            "sub": grant.person["sub"],
            "aud": client_id,
            "exp": now + ID_TOKEN_SECONDS,
            "iat": now,
            "name": grant.person.get("name", ""),
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        faults: dict[str, Any] = dict(request.app.state.id_token_faults)
        request.app.state.id_token_faults = {}
        signer = other_key if faults.pop("sign_with", None) == "other-key" else key
        claims.update(faults)
        id_token = jwt.encode({"alg": "RS256", "kid": "sim-1"}, claims, signer)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": int(grants.token_ttl),
                "id_token": id_token,
                "scope": "openid profile email",
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def userinfo(request: Request) -> Response:
        person = grants.person_of(request.headers.get("authorization", ""))
        if person is None:
            return Response(
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return Response(orjson.dumps(person), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/jwks", jwks, methods=["GET"]),
            Route("/authorize", authorize, methods=["GET"]),
            Route("/token", token, methods=["POST"]),
            Route("/userinfo", userinfo, methods=["GET"]),
        ]
    )
    app.state.clients = clients
    app.state.person = None
    app.state.grants = grants
    app.state.id_token_faults = {}
    return app
