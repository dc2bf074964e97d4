"""Cloudflare Turnstile's server-side check (``siteverify``), as One API runs it before
sign-up, mail codes and (here also) logins: the widget's response token, the site's secret
and the client's address are POSTed as a form; ``success`` says whether a person solved it.
A token is good for one check within 300 seconds (Cloudflare's ``timeout-or-duplicate``).

The endpoint is ``TURNSTILE_VERIFY_URL`` (Cloudflare's by default), so tests point it at the
strict simulator in ``unigate_sim.turnstile``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

SITEVERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
# Cloudflare documents tokens of at most 2048 characters.
MAX_TOKEN_LENGTH = 2048
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    passed: bool
    error_codes: tuple[str, ...] = ()


class TurnstileUnavailable(RuntimeError):
    """siteverify could not be asked (unreachable, or an answer that is not its own)."""


async def siteverify(url: str, secret: str, token: str, remote_ip: str) -> Outcome:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return Outcome(False, ("invalid-input-response",))
    form = {"secret": secret, "response": token}
    if remote_ip:
        form["remoteip"] = remote_ip
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.post(url, data=form)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise TurnstileUnavailable(f"siteverify unreachable: {type(exc).__name__}") from None
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        raise TurnstileUnavailable(f"siteverify answered HTTP {response.status_code} unreadably")
    codes = body.get("error-codes") or []
    outcome = Outcome(body["success"], tuple(str(c) for c in codes if isinstance(c, str)))
    if not outcome.passed and {"missing-input-secret", "invalid-input-secret"} & set(codes):
        # The operator's configuration, not the visitor: say so where the operator looks.
        log.error("Turnstile refused the secret key (TurnstileSecretKey): %s", codes)
    return outcome
