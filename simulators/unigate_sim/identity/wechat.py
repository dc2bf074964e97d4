"""One API's WeChat server (songquanpeng/wechat-server): a person who writes to the official
account gets a short verification code; One API exchanges it at ``GET /api/wechat/user?code=``
with ``Authorization: <token>``, answered ``{"success", "message", "data": <openid>}``.

Refused: a wrong token (401, ``success`` false); a code unknown, already used or older than
``code_ttl`` (``success`` false). ``app.state``: ``token``, ``codes`` (code → (openid,
issued at)) filled by :func:`give_code`, ``code_ttl``.
"""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def give_code(app: Starlette, openid: str) -> str:
    """What the official account answers a person: a new code for their openid."""
    code = f"{secrets.randbelow(10**6):06d}"
    app.state.codes[code] = (openid, time.time())
    return code


def create_wechat_app(token: str) -> Starlette:
    async def user(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), request.app.state.token.encode()):
            return JSONResponse({"success": False, "message": "无权进行此操作, token 无效"}, 401)
        entry = request.app.state.codes.pop(request.query_params.get("code", ""), None)
        if entry is None or time.time() - entry[1] > request.app.state.code_ttl:
            return JSONResponse({"success": False, "message": "验证码错误或已过期"})
        return JSONResponse({"success": True, "message": "", "data": entry[0]})

    app = Starlette(routes=[Route("/api/wechat/user", user, methods=["GET"])])
    app.state.token = token
    app.state.codes = {}
    app.state.code_ttl = 300.0
    return app
