"""External logins (One API's ``/api/oauth/*``): the HTTP half of auth's OAuth RPCs.

``GET /api/oauth/state?provider=github|lark|oidc`` opens a flow in auth and keeps its
``state`` in the signed session cookie (One API's ``oauth_state``); the answer's ``data`` is
the state (as One API's) and ``url`` the provider's authorization URL (PKCE and nonce were
chosen by auth, so the console cannot build it itself). The provider sends the browser back
to ``/oauth/<provider>`` (the console's page), whose script calls
``GET /api/oauth/<provider>?code=&state=``: the state must equal the cookie's (compared in
constant time, then dropped), so only the browser that started a flow can finish it, and
auth takes the flow once. A caller with a session binds instead of logging in (as One
API: the flow was opened by that session). WeChat's is a typed code: ``GET
/api/oauth/wechat?code=`` logs in, ``/api/oauth/wechat/bind?code=`` binds;
``/api/oauth/email/bind?email=&code=`` binds an address the caller proved by its mailed code. ``POST
/api/oauth/<provider>/unbind`` removes the caller's own binding (unigate's; One API has none).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Query, Request

from unigate.v1 import admin_pb2
from unigate_gateway.management.base import (
    SESSION_METADATA,
    ApiError,
    ClientIp,
    Reader,
    StubsGetter,
    Writer,
    envelope,
    fields,
)

STATE_KEY = "oauth_state"
MAX_CODE = 512
Code = Query(min_length=1, max_length=MAX_CODE)


def _session_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The cookie's session, if any: auth binds for it, or logs in when there is none."""
    sid = request.session.get("sid")
    return ((SESSION_METADATA, sid),) if isinstance(sid, str) and sid else ()


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def oauth_router(stubs: StubsGetter, client_ip: ClientIp) -> APIRouter:
    router = APIRouter()

    def logged_in(request: Request, answer: admin_pb2.OAuthFinishResponse) -> dict[str, Any]:
        if answer.bound:
            return envelope(None, "bind")
        login = answer.login
        # As a password login: a new session id and CSRF token (no session fixation).
        request.session.clear()
        request.session["sid"] = login.session_id
        request.session["csrf"] = secrets.token_urlsafe(32)
        return envelope(
            {
                **fields(login.user),
                "csrf_token": request.session["csrf"],
                "require_password_change": login.require_password_change,
            }
        )

    @router.get("/oauth/state", tags=["oauth"], summary="Open an external login or binding")
    async def state(
        request: Request, provider: str = Query("github", max_length=16)
    ) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.StartOAuth(
            admin_pb2.OAuthStartRequest(
                provider=provider, origin=_origin(request), client_ip=client_ip(request)
            ),
            metadata=_session_metadata(request),
            timeout=s.timeout,
        )
        request.session[STATE_KEY] = answer.state
        return envelope(answer.state, url=answer.authorize_url)

    async def finish(request: Request, provider: str, code: str, state: str) -> dict[str, Any]:
        expected = request.session.pop(STATE_KEY, None)
        if not (
            state
            and isinstance(expected, str)
            and hmac.compare_digest(expected.encode(), state.encode())
        ):
            raise ApiError(403, "state is empty or not same")
        s = stubs()
        answer = await s.admin.FinishOAuth(
            admin_pb2.OAuthFinishRequest(provider=provider, code=code, state=state),
            metadata=_session_metadata(request),
            timeout=s.timeout,
        )
        return logged_in(request, answer)

    for name in ("github", "lark", "oidc"):

        def route(name: str = name) -> None:
            @router.get(f"/oauth/{name}", tags=["oauth"], summary=f"Finish a {name} login")
            async def callback(
                request: Request,
                code: str = Code,
                state: str = Query("", max_length=256),
            ) -> dict[str, Any]:
                return await finish(request, name, code, state)

        route()

    @router.get("/oauth/wechat", tags=["oauth"], summary="Log in with a WeChat server code")
    async def wechat(request: Request, code: str = Code) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.WeChatLogin(
            admin_pb2.WeChatCodeRequest(code=code, client_ip=client_ip(request)),
            timeout=s.timeout,
        )
        return logged_in(request, answer)

    @router.get("/oauth/wechat/bind", tags=["oauth"], summary="Bind WeChat to the caller")
    async def wechat_bind(caller: Reader, request: Request, code: str = Code) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.WeChatLogin(
            admin_pb2.WeChatCodeRequest(code=code, client_ip=client_ip(request)),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return logged_in(request, answer)

    @router.get("/oauth/email/bind", tags=["oauth"], summary="Bind a verified email")
    async def email_bind(
        caller: Reader,
        email: str = Query(min_length=1, max_length=254),
        code: str = Query(min_length=1, max_length=16),
    ) -> dict[str, Any]:
        # One API's route: the code /api/verification mailed to the address proves it.
        s = stubs()
        me = await s.admin.BindEmail(
            admin_pb2.EmailBindRequest(email=email, code=code),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return envelope(fields(me))

    @router.post("/oauth/{provider}/unbind", tags=["oauth"], summary="Remove the caller's binding")
    async def unbind(caller: Writer, provider: str) -> dict[str, Any]:
        if len(provider) > 16:
            raise ApiError(400, "provider is one of github, lark, oidc, wechat")
        s = stubs()
        me = await s.admin.UnbindOAuth(
            admin_pb2.OAuthUnbindRequest(provider=provider),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return envelope(fields(me))

    return router
