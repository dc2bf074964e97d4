"""One API's WeChat login: a wechat-server (songquanpeng/wechat-server) behind a WeChat
official account hands a person a short verification code; the code they type is exchanged at
``GET <WeChatServerAddress>/api/wechat/user?code=...`` with ``Authorization:
<WeChatServerToken>``, which answers ``{"success", "message", "data": <openid>}`` (an empty
``data`` for a code it does not know, has used or that is older than 3 minutes). The server
alone knows who scanned; unigate trusts its answer (docs/security.md)."""

from __future__ import annotations

from urllib.parse import urlencode

from unigate_auth.oauth.common import ExternalIdentity, ProviderRefused, call, text


async def identity(server: str, token: str, code: str) -> ExternalIdentity:
    status, body = await call(
        "GET",
        f"{server.rstrip('/')}/api/wechat/user?{urlencode({'code': code})}",
        what="the WeChat server",
        headers={"Authorization": token},
    )
    if status != 200 or body.get("success") is not True:
        reason = text(body, "message") or str(status)
        raise ProviderRefused(f"the WeChat server refused the code: {reason}")
    openid = text(body, "data")
    if not openid:
        # The server answers an unknown, used or expired code with success and no openid.
        raise ProviderRefused("the WeChat code is wrong or expired")
    return ExternalIdentity(openid, "")
