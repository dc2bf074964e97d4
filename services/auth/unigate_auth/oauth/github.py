"""GitHub's OAuth web flow (docs.github.com, "Authorizing OAuth apps").

The browser goes to ``<GITHUB>/login/oauth/authorize`` with client_id, redirect_uri, scope,
state and the PKCE S256 challenge; the code comes back to the redirect URI and is exchanged
at ``POST <GITHUB>/login/oauth/access_token`` (client_id, client_secret, code, redirect_uri,
code_verifier; ``Accept: application/json``). GitHub answers a refused exchange with HTTP 200
and ``{"error", "error_description", "error_uri"}`` (``bad_verification_code``,
``incorrect_client_credentials``, ``redirect_uri_mismatch``), so the body decides. The person
is ``GET <GITHUB_API>/user`` with the token; their stable id is the numeric ``id`` (One API
kept the ``login``, which its owner can rename and someone else can then take).
"""

from __future__ import annotations

from urllib.parse import urlencode

from unigate_auth.oauth.common import ExternalIdentity, ProviderRefused, call, text


def authorize_url(base: str, client_id: str, redirect_uri: str, state: str, challenge: str) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "read:user",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base.rstrip('/')}/login/oauth/authorize?{query}"


async def identity(
    base: str,
    api_base: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    verifier: str,
) -> ExternalIdentity:
    status, body = await call(
        "POST",
        f"{base.rstrip('/')}/login/oauth/access_token",
        what="GitHub",
        data={
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    token = text(body, "access_token")
    if status != 200 or not token:
        raise ProviderRefused(f"GitHub refused the code: {text(body, 'error') or status}")
    status, user = await call(
        "GET",
        f"{api_base.rstrip('/')}/user",
        what="GitHub",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    user_id = user.get("id") if isinstance(user, dict) else None
    if status != 200 or not isinstance(user_id, int):
        raise ProviderRefused(f"GitHub did not tell who logged in ({status})")
    return ExternalIdentity(str(user_id), text(user, "name") or text(user, "login"))
