"""Lark/Feishu web-app login (open.feishu.cn: "获取授权码", "获取 user_access_token",
"获取用户信息").

The browser goes to ``<LARK_ACCOUNTS>/open-apis/authen/v1/authorize`` (client_id = the App
ID, redirect_uri, state, PKCE S256); the code (valid 5 minutes, single-use) is exchanged at
``POST <LARK>/open-apis/authen/v2/oauth/token`` with a JSON body (grant_type
authorization_code, client_id, client_secret, code, redirect_uri, code_verifier): RFC 6749
answers, ``code`` 0 on success, else ``error``/``error_description`` with a 4xx. The person is
``GET <LARK>/open-apis/authen/v1/user_info`` (``{"code": 0, "data": {"open_id", "name",
...}}``); One API keeps the ``open_id``, and so does unigate.
"""

from __future__ import annotations

from urllib.parse import urlencode

from unigate_auth.oauth.common import ExternalIdentity, ProviderRefused, call, text


def authorize_url(
    accounts_base: str, client_id: str, redirect_uri: str, state: str, challenge: str
) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{accounts_base.rstrip('/')}/open-apis/authen/v1/authorize?{query}"


async def identity(
    base: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    verifier: str,
) -> ExternalIdentity:
    base = base.rstrip("/")
    status, body = await call(
        "POST",
        f"{base}/open-apis/authen/v2/oauth/token",
        what="Lark",
        headers={"Content-Type": "application/json; charset=utf-8"},
        json={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    token = text(body, "access_token")
    if status != 200 or not token or body.get("code") != 0:
        raise ProviderRefused(f"Lark refused the code: {text(body, 'error') or status}")
    status, answer = await call(
        "GET",
        f"{base}/open-apis/authen/v1/user_info",
        what="Lark",
        headers={"Authorization": f"Bearer {token}"},
    )
    data = answer.get("data") if isinstance(answer, dict) else None
    open_id = text(data, "open_id")
    if status != 200 or answer.get("code") != 0 or not open_id:
        raise ProviderRefused(f"Lark did not tell who logged in ({status})")
    return ExternalIdentity(open_id, text(data, "name"))
