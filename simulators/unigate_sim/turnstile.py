"""Cloudflare Turnstile's server-side validation endpoint (``POST
/turnstile/v0/siteverify``), strict as the real one is documented to be
(developers.cloudflare.com/turnstile/get-started/server-side-validation/):

- the body is a form (``application/x-www-form-urlencoded`` or multipart) or JSON with
  ``secret``, ``response`` and optionally ``remoteip`` and ``idempotency_key``;
- the answer is HTTP 200 with ``success``, ``error-codes`` and, on success, ``challenge_ts``
  (ISO 8601), ``hostname``, ``action`` and ``cdata``;
- ``missing-input-secret`` / ``invalid-input-secret``: no or a wrong secret;
  ``missing-input-response`` / ``invalid-input-response``: no token, or one this widget never
  issued (or longer than 2048 characters); ``timeout-or-duplicate``: a token already checked
  once, or older than 300 seconds; ``bad-request``: a body that is neither;
- anything but POST is refused (405).

Tests play the widget with ``issue()``: a token as a browser would get by solving the
challenge; ``app.state.checks`` keeps what was asked (remoteip included).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN_LIFETIME_SECONDS = 300
MAX_TOKEN_LENGTH = 2048


@dataclass
class Issued:
    issued_at: float
    hostname: str
    action: str = ""
    cdata: str = ""
    spent: bool = False


@dataclass
class TurnstileState:
    secret: str
    tokens: dict[str, Issued] = field(default_factory=dict)
    checks: list[dict[str, str]] = field(default_factory=list)

    def issue(self, hostname: str = "127.0.0.1", *, age: float = 0.0) -> str:
        """A token as the widget gives a person who solved the challenge (``age`` seconds
        ago)."""
        token = "0." + secrets.token_urlsafe(120)
        self.tokens[token] = Issued(issued_at=time.time() - age, hostname=hostname)
        return token


def _fail(*codes: str) -> JSONResponse:
    return JSONResponse({"success": False, "error-codes": list(codes), "messages": []})


async def _read(request: Request) -> dict[str, str] | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            body: Any = await request.json()
            if not isinstance(body, dict):
                return None
            return {k: v for k, v in body.items() if isinstance(v, str)}
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}
    except ValueError:
        return None
    return None


def create_app(secret: str) -> Starlette:
    state = TurnstileState(secret=secret)

    async def siteverify(request: Request) -> JSONResponse:
        if request.method != "POST":
            return JSONResponse(
                {"success": False, "error-codes": ["bad-request"], "messages": []}, 405
            )
        body = await _read(request)
        if body is None:
            return _fail("bad-request")
        state.checks.append(dict(body))
        given_secret = body.get("secret", "")
        token = body.get("response", "")
        if not given_secret:
            return _fail("missing-input-secret")
        if not secrets.compare_digest(given_secret.encode(), state.secret.encode()):
            return _fail("invalid-input-secret")
        if not token:
            return _fail("missing-input-response")
        issued = state.tokens.get(token) if len(token) <= MAX_TOKEN_LENGTH else None
        if issued is None:
            return _fail("invalid-input-response")
        if issued.spent or time.time() - issued.issued_at > TOKEN_LIFETIME_SECONDS:
            issued.spent = True
            return _fail("timeout-or-duplicate")
        issued.spent = True
        solved = datetime.fromtimestamp(issued.issued_at, UTC)
        return JSONResponse(
            {
                "success": True,
                "challenge_ts": solved.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "hostname": issued.hostname,
                "error-codes": [],
                "action": issued.action,
                "cdata": issued.cdata,
                "metadata": {"ephemeral_id": "x:" + secrets.token_hex(10)},
            }
        )

    app = Starlette(
        routes=[
            Route("/turnstile/v0/siteverify", siteverify, methods=["GET", "POST", "PUT", "DELETE"])
        ]
    )
    app.state.turnstile = state
    return app
