"""Signing up and back in by mail, invitations and top-ups, at One API's paths:
``GET /api/verification``, ``GET /api/reset_password``, ``POST /api/user/reset``,
``POST /api/user/register``, ``GET /api/user/aff`` and admin ``POST /api/topup``. Auth
decides everything (``unigate_auth.admin.signup``); this layer passes the client's address
and runs Turnstile's check where One API does (register, the two mails, and login).

Turnstile: the widget's token comes as the ``turnstile`` query parameter (One API's front
end). Once a token passed, the session remembers it for ``TURNSTILE_SESSION_SECONDS``, as
One API does, so that the code request and the registration it leads to need one challenge;
a token itself is good once (siteverify refuses it the second time).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from google.protobuf import empty_pb2

from unigate.v1 import admin_pb2
from unigate_gateway.management.base import (
    ApiError,
    ClientIp,
    Reader,
    StubsGetter,
    Writer,
    envelope,
    fields,
)
from unigate_gateway.management.bodies import AdminTopUpBody, RegisterBody, ResetBody
from unigate_gateway.management.limits import TextQuery

TURNSTILE_SESSION_SECONDS = 600
MAX_TURNSTILE_TOKEN = 2048


async def turnstile_passed(stubs: StubsGetter, request: Request, client_ip: ClientIp) -> None:
    """Refuse (403) unless Turnstile is off, this session passed it lately, or the request's
    ``turnstile`` token passes now."""
    passed_at = request.session.get("turnstile")
    if isinstance(passed_at, int) and 0 <= time.time() - passed_at < TURNSTILE_SESSION_SECONDS:
        return
    token = request.query_params.get("turnstile", "")
    if len(token) > MAX_TURNSTILE_TOKEN:
        token = "\0"  # not a token siteverify could accept; refused as such below
    s = stubs()
    verdict = await s.admin.VerifyTurnstile(
        admin_pb2.TurnstileRequest(token=token.replace("\0", ""), client_ip=client_ip(request)),
        timeout=s.timeout,
    )
    if not verdict.required:
        return
    if not token:
        raise ApiError(403, "the Turnstile token is empty: solve the challenge first")
    if not verdict.passed:
        raise ApiError(403, "the Turnstile check failed: refresh the challenge and try again")
    request.session["turnstile"] = int(time.time())


def signup_router(stubs: StubsGetter, client_ip: ClientIp) -> APIRouter:
    router = APIRouter()

    @router.get("/verification", tags=["user"], summary="Mail a sign-up verification code")
    async def verification(request: Request, email: TextQuery = "") -> dict[str, Any]:
        await turnstile_passed(stubs, request, client_ip)
        s = stubs()
        await s.admin.SendVerificationCode(
            admin_pb2.MailCodeRequest(email=email, client_ip=client_ip(request)),
            timeout=s.timeout,
        )
        return envelope()

    @router.get("/reset_password", tags=["user"], summary="Mail a password-reset link")
    async def reset_password(request: Request, email: TextQuery = "") -> dict[str, Any]:
        await turnstile_passed(stubs, request, client_ip)
        s = stubs()
        await s.admin.SendPasswordResetMail(
            admin_pb2.MailCodeRequest(email=email, client_ip=client_ip(request)),
            timeout=s.timeout,
        )
        return envelope()

    @router.post(
        "/user/reset",
        tags=["user"],
        summary="Reset a password with the mailed link's token; data is the new password",
    )
    async def reset(request: Request, body: ResetBody) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.ResetPasswordByMail(
            admin_pb2.MailPasswordReset(
                email=body.email, token=body.token, client_ip=client_ip(request)
            ),
            timeout=s.timeout,
        )
        return envelope(answer.password)

    @router.post("/user/register", tags=["user"], summary="Register (option RegisterEnabled)")
    async def register(request: Request, body: RegisterBody) -> dict[str, Any]:
        await turnstile_passed(stubs, request, client_ip)
        s = stubs()
        user = await s.admin.Register(
            admin_pb2.RegisterRequest(**body.given(), client_ip=client_ip(request)),
            timeout=s.timeout,
        )
        return envelope(fields(user))

    @router.get("/user/aff", tags=["user"], summary="The caller's invitation code")
    async def aff_code(caller: Reader) -> dict[str, Any]:
        s = stubs()
        answer = await s.admin.GetAffCode(
            empty_pb2.Empty(), metadata=caller.metadata, timeout=s.timeout
        )
        return envelope(answer.aff_code)

    @router.post("/topup", tags=["users"], summary="Credit a user's quota (admin)")
    async def admin_topup(caller: Writer, body: AdminTopUpBody) -> dict[str, Any]:
        s = stubs()
        change = await s.admin.AdminTopUp(
            admin_pb2.AdminTopUpRequest(user_id=body.user_id, quota=body.quota, remark=body.remark),
            metadata=caller.metadata,
            timeout=s.timeout,
        )
        return envelope(fields(change))

    return router
