"""What every provider exchange shares: the person it names, its refusals, and the HTTP
calls (httpx, as auth's other outgoing calls; no redirects followed, short timeouts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

TIMEOUT_SECONDS = 10.0
# GitHub's REST API refuses requests without a User-Agent; the others ignore it.
USER_AGENT = "unigate-oauth"


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    # The provider's stable id of the person (what users.<provider>_id stores).
    subject: str
    # A name to show for a new account ("" when the provider gave none).
    display_name: str


class ProviderRefused(Exception):
    """The provider (or our check of what it sent) refused this login; the message is for
    the person and never carries a secret."""


class ProviderUnreachable(Exception):
    """The provider could not be asked (network, timeout, an answer that is not JSON)."""


async def call(
    method: str,
    url: str,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    json: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """(status, JSON object) of one call to a provider; a refusal without one is ``{}``."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.request(
                method,
                url,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
                data=data,
                json=json,
                auth=auth,
            )
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"{what} could not be reached ({type(exc).__name__})") from None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        if response.is_success:
            raise ProviderUnreachable(f"{what} answered {response.status_code} without JSON")
        # A refusal without a JSON object (an OAuth resource server's bare 401): its status
        # says enough, and the caller refuses on it.
        body = {}
    return response.status_code, body


def text(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where GitHub and Lark live (auth's settings; OIDC and WeChat come from options)."""

    github: str = "https://github.com"
    github_api: str = "https://api.github.com"
    lark: str = "https://open.feishu.cn"
    lark_accounts: str = "https://accounts.feishu.cn"
