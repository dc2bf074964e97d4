"""The AdminService role decorator: every RPC declares its least role, and a caller below it
is refused before the RPC's body runs."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from unigate.v1 import admin_pb2, admin_pb2_grpc
from unigate_auth.admin.rpc import PUBLIC, ROLE_ATTRIBUTE, AdminBase, Context, rpc
from unigate_auth.admin.service import AdminService
from unigate_auth.admin.sessions import ROLE_ADMIN, ROLE_ROOT, ROLE_USER, Caller

RPC_NAMES = sorted(n for n in vars(admin_pb2_grpc.AdminServiceServicer) if not n.startswith("_"))


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class FakeContext:
    """What the decorator uses of a ``grpc.aio.ServicerContext``: ``abort`` raises, as gRPC's
    does."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


def _as_caller(service: AdminBase, role: int, seen: list[bool]) -> None:
    async def caller(context: Context, before_password_change: bool) -> Caller:
        seen.append(before_password_change)
        return Caller(
            id=7,
            username="u",
            role=role,
            group="default",
            must_change_password=False,
            session_id="",
        )

    service._caller = caller  # type: ignore[method-assign]


class Probe(AdminBase):
    """An RPC of admin rank whose body reports the caller's role."""

    @rpc(ROLE_ADMIN)
    async def Probe(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.IdRequest:
        return admin_pb2.IdRequest(id=caller.role)


def test_every_rpc_declares_a_role() -> None:
    assert len(RPC_NAMES) > 30
    declared = {}
    for name in RPC_NAMES:
        handler = getattr(AdminService, name)
        assert handler is not getattr(admin_pb2_grpc.AdminServiceServicer, name), name
        declared[name] = getattr(handler, ROLE_ATTRIBUTE, None)
        assert declared[name] in (PUBLIC, ROLE_USER, ROLE_ADMIN, ROLE_ROOT), name
        assert handler.__name__ == name  # the name logs see is the RPC's own
    assert sorted(n for n, r in declared.items() if r == PUBLIC) == [
        # The external logins: anyone may start one; a session in the metadata binds instead.
        "FinishOAuth",
        "GetStatus",
        "Login",
        "Register",
        # Mail sign-up and password reset: the caller has no session yet by definition.
        "ResetPasswordByMail",
        "SendPasswordResetMail",
        "SendVerificationCode",
        "StartOAuth",
        "VerifyTurnstile",
        "WeChatLogin",
    ]
    assert declared["UnbindOAuth"] == ROLE_USER
    assert declared["BindEmail"] == ROLE_USER
    assert declared["AdminTopUp"] == ROLE_ADMIN
    assert declared["GetAffCode"] == ROLE_USER
    assert declared["DeleteUser"] == ROLE_ADMIN
    assert declared["UpdateOption"] == ROLE_ROOT


@pytest.mark.parametrize(
    ("role", "allowed"), [(ROLE_USER, False), (ROLE_ADMIN, True), (ROLE_ROOT, True)]
)
async def test_decorator_refuses_a_caller_below_the_role(role: int, allowed: bool) -> None:
    probe = Probe.__new__(Probe)
    _as_caller(probe, role, [])
    context: Any = FakeContext()
    if allowed:
        answer = await probe.Probe(admin_pb2.IdRequest(id=1), context)
        assert answer.id == role
    else:
        with pytest.raises(Aborted) as refused:
            await probe.Probe(admin_pb2.IdRequest(id=1), context)
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_service_refuses_before_the_body_runs() -> None:
    # Built without its pool: a body that ran would fail on the missing attribute instead.
    service = AdminService.__new__(AdminService)
    seen: list[bool] = []
    _as_caller(service, ROLE_USER, seen)
    context: Any = FakeContext()
    for call in (
        service.DeleteUser(admin_pb2.IdRequest(id=1), context),
        service.ListChannels(admin_pb2.ListRequest(), context),
        service.GetOptions(empty_pb2.Empty(), context),
    ):
        with pytest.raises(Aborted) as refused:
            await call
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    # None of these is reachable before the default password is changed.
    assert seen == [False, False, False]
