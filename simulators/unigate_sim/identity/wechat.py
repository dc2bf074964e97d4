"""One API's WeChat server (songquanpeng/wechat-server): a person who writes to the official
account gets a short verification code; One API exchanges it at ``GET /api/wechat/user?code=``
with ``Authorization: <token>``, answered ``{"success", "message", "data": <openid>}``.

As the server's code does (``controller/wechat.go``, ``middleware/auth.go``,
``common/verification.go``), every answer is HTTP 200: a missing or wrong token is
``success`` false with its message; no code is ``success`` false (无效的参数); a code unknown,
already used (a lookup deletes it) or older than ``code_ttl`` (3 minutes) is ``success``
true with an empty ``data``. ``app.state``: ``token``, ``codes`` (code → (openid, issued
at)) filled by :func:`give_code`, ``code_ttl``.
"""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The server's words (with its full-width comma).
UNAUTHORIZED = "无权进行此操作\uff0c未登录或 token 无效"


def give_code(app: Starlette, openid: str) -> str:
    """What the official account answers a person: a new code for their openid."""
    code = f"{secrets.randbelow(10**6):06d}"
    app.state.codes[code] = (openid, time.time())
    return code


def create_wechat_app(token: str) -> Starlette:
    async def user(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if not given or not hmac.compare_digest(given.encode(), request.app.state.token.encode()):
            return JSONResponse({"success": False, "message": UNAUTHORIZED})
        code = request.query_params.get("code", "")
        if not code:
            return JSONResponse({"success": False, "message": "无效的参数"})
        entry = request.app.state.codes.pop(code, None)
        if entry is None or time.time() - entry[1] >= request.app.state.code_ttl:
            return JSONResponse({"success": True, "message": "", "data": ""})
        return JSONResponse({"success": True, "message": "", "data": entry[0]})

    app = Starlette(routes=[Route("/api/wechat/user", user, methods=["GET"])])
    app.state.token = token
    app.state.codes = {}
    app.state.code_ttl = 180.0
    return app
