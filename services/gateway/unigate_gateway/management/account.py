"""The caller's own account, sessions and the public/system routes: ``/api/user/login``,
``logout``, ``register``, ``self``, ``token``, ``topup``, ``available_models``;
``dashboard``; ``/api/status``, ``/api/notice``, ``/api/about``, ``/api/home_page_content``,
``/api/models``, ``/api/group/``, ``/api/option/``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import empty_pb2

from unigate.v1 import admin_pb2, billing_pb2
from unigate_gateway.management.base import (
    ClientIp,
    Reader,
    StubsGetter,
    Writer,
    envelope,
    fields,
)
from unigate_gateway.management.bodies import (
    LoginBody,
    OptionBody,
    SelfBody,
    TopUpBody,
)
from unigate_gateway.management.signup import turnstile_passed

# SystemStatus fields One API serves on routes of their own, not in /api/status.
_OWN_ROUTE_TEXTS = ("notice", "about", "home_page_content")
DAY_SECONDS = 86_400
# One API's dashboard: the last seven UTC days, today included.
DASHBOARD_DAYS = 7

PASSWORD_CHANGE_MESSAGE = (
    "the default password must be changed before anything else:"
    " PUT /api/user/self with password and original_password"
)


def account_router(stubs: StubsGetter, client_ip: ClientIp) -> APIRouter:
    router = APIRouter()
    empty = empty_pb2.Empty

    @router.post("/user/login", tags=["user"], summary="Log in; sets the session cookie")
    async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        await turnstile_passed(stubs, request, client_ip)
        s = stubs()
        answer = await s.admin.Login(
            admin_pb2.LoginRequest(
                username=body.username, password=body.password, client_ip=client_ip(request)
            ),
            timeout=s.timeout,
        )
        # A new session id and CSRF token at every login (no session fixation).
        request.session.clear()
        request.session["sid"] = answer.session_id
        request.session["csrf"] = secrets.token_urlsafe(32)
        response.headers["X-CSRF-Token"] = request.session["csrf"]
        data = {
            **fields(answer.user),
            "csrf_token": request.session["csrf"],
            "require_password_change": answer.require_password_change,
        }
        return envelope(data, PASSWORD_CHANGE_MESSAGE if answer.require_password_change else "")

    @router.get("/user/logout", tags=["user"], summary="End the session")
    async def logout(request: Request) -> dict[str, Any]:
        if request.session.get("sid"):
            s = stubs()
            metadata = (("x-unigate-session", str(request.session["sid"])),)
            try:
                await s.admin.Logout(empty(), metadata=metadata, timeout=s.timeout)
            finally:
                request.session.clear()
        return envelope()

    @router.get("/user/self", tags=["user"], summary="The caller's own user record")
    async def get_self(caller: Reader, request: Request) -> dict[str, Any]:
        s = stubs()
        me = await s.admin.GetSelf(empty(), metadata=caller.metadata, timeout=s.timeout)
        data = fields(me)
        if caller.via_cookie:
            # The session's CSRF token again, for a console page opened after the login (a
            # new tab): only same-origin script can read this answer.
            data["csrf_token"] = request.session.get("csrf", "")
        return envelope(data, PASSWORD_CHANGE_MESSAGE if me.must_change_password else "")

    @router.put("/user/self", tags=["user"], summary="Change own name, email or password")
    async def update_self(caller: Writer, body: SelfBody) -> dict[str, Any]:
        s = stubs()
        me = await s.admin.UpdateSelf(
            admin_pb2.UpdateSelfRequest(**{k: v for k, v in body.given().items() if v is not None}),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return envelope(fields(me))

    @router.get(
        "/user/token",
        tags=["user"],
        summary="A new management access token (shown once; the previous one stops working)",
    )
    async def access_token(caller: Reader) -> dict[str, Any]:
        s = stubs()
        token = await s.admin.NewAccessToken(empty(), metadata=caller.metadata, timeout=s.timeout)
        return envelope(token.access_token)

    @router.post("/user/topup", tags=["user"], summary="Redeem a code for quota")
    async def topup(caller: Writer, body: TopUpBody) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.Redeem(
            admin_pb2.RedeemRequest(key=body.key), metadata=caller.metadata, timeout=s.timeout
        )
        return envelope(answer.quota)

    @router.get("/user/available_models", tags=["user"], summary="Models the caller's group has")
    async def available_models(caller: Reader) -> dict[str, Any]:
        s = stubs()
        names = await s.admin.AvailableModels(empty(), metadata=caller.metadata, timeout=s.timeout)
        return envelope(list(names.names))

    @router.get(
        "/user/dashboard",
        tags=["user"],
        summary="The caller's usage by day and model over the last 7 days (One API's names)",
    )
    async def dashboard(caller: Reader) -> dict[str, Any]:
        s = stubs()
        me = await s.admin.GetSelf(empty(), metadata=caller.metadata, timeout=s.timeout)
        today = int(time.time()) // DAY_SECONDS * DAY_SECONDS
        answer = await s.billing.UsageStats(
            billing_pb2.UsageStatsRequest(
                filter=billing_pb2.UsageFilter(
                    user_id=me.id,
                    start_timestamp=today - (DASHBOARD_DAYS - 1) * DAY_SECONDS,
                    end_timestamp=today + DAY_SECONDS - 1,
                ),
                group_by=billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL,
            ),
            timeout=s.timeout,
        )
        # One API's LogStatistic has no JSON tags, so its clients read Go's field names.
        return envelope(
            [
                {
                    "Day": r.day,
                    "ModelName": r.model_name,
                    "RequestCount": r.requests,
                    "Quota": r.quota,
                    "PromptTokens": r.prompt_tokens,
                    "CompletionTokens": r.completion_tokens,
                }
                for r in answer.rows
            ]
        )

    async def public_status() -> dict[str, Any]:
        s = stubs()
        return fields(await s.admin.GetStatus(empty(), timeout=s.timeout))

    @router.get("/status", tags=["system"], summary="Public system status")
    async def status() -> dict[str, Any]:
        data = await public_status()
        for name in _OWN_ROUTE_TEXTS:
            data.pop(name)
        return envelope(data)

    @router.get("/notice", tags=["system"], summary="The notice (option Notice; public)")
    async def notice() -> dict[str, Any]:
        return envelope((await public_status())["notice"])

    @router.get("/about", tags=["system"], summary="The about page (option About; public)")
    async def about() -> dict[str, Any]:
        return envelope((await public_status())["about"])

    @router.get(
        "/home_page_content",
        tags=["system"],
        summary="The home page content (option HomePageContent; public)",
    )
    async def home_page_content() -> dict[str, Any]:
        return envelope((await public_status())["home_page_content"])

    @router.get("/models", tags=["system"], summary="Models configured on channels, by type")
    async def models(caller: Reader) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.ModelsByType(empty(), metadata=caller.metadata, timeout=s.timeout)
        return envelope({str(t): list(n.names) for t, n in sorted(answer.by_type.items())})

    @router.get("/group/", tags=["system"], summary="Groups (admin)")
    async def groups(caller: Reader) -> dict[str, Any]:
        s = stubs()
        names = await s.admin.ListGroups(empty(), metadata=caller.metadata, timeout=s.timeout)
        return envelope(list(names.names))

    @router.get("/option/", tags=["system"], summary="Options (root)")
    async def get_options(caller: Reader) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.GetOptions(empty(), metadata=caller.metadata, timeout=s.timeout)
        return envelope([fields(o) for o in answer.options])

    @router.put("/option/", tags=["system"], summary="Set one option (root)")
    async def put_option(caller: Writer, body: OptionBody) -> dict[str, Any]:
        s = stubs()
        await s.admin.UpdateOption(
            admin_pb2.OptionEntry(key=body.key, value=body.text()),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return envelope()

    return router
