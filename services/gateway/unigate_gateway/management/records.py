"""Users, API keys, channels and redemption codes: One API's ``/api/user/``,
``/api/token/``, ``/api/channel/`` and ``/api/redemption/`` routes, each a call to auth's
AdminService. Lists are 0-based pages (``p``, ``size``); ``/search`` adds ``keyword``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from google.protobuf import empty_pb2

from unigate.v1 import admin_pb2
from unigate_gateway.management.base import (
    ROLE_ADMIN,
    Caller,
    Reader,
    StubsGetter,
    Writer,
    envelope,
    fields,
    require_role,
)
from unigate_gateway.management.bodies import (
    ChannelBody,
    ManageBody,
    RedemptionBody,
    TokenBody,
    UserBody,
)
from unigate_gateway.management.limits import (
    Int64Query,
    KeyFingerprint,
    Page,
    RecordId,
    Size,
    TextQuery,
)


def _page(
    p: int, size: int, keyword: TextQuery = "", user_id: Int64Query = 0
) -> admin_pb2.ListRequest:
    return admin_pb2.ListRequest(page=p, size=size, keyword=keyword, user_id=user_id)


def _listed(items: Any, total: int) -> dict[str, Any]:
    return envelope([fields(i) for i in items], total=total)


def records_router(stubs: StubsGetter) -> APIRouter:
    router = APIRouter()
    empty = empty_pb2.Empty

    async def call(rpc: str, request: Any, caller: Caller) -> Any:
        s = stubs()
        return await getattr(s.admin, rpc)(request, metadata=caller.metadata, timeout=s.timeout)

    # ---- users ----
    @router.get("/user/", tags=["users"], summary="List users (admin)")
    async def list_users(caller: Reader, p: Page = 0, size: Size = 0) -> dict[str, Any]:
        answer = await call("ListUsers", _page(p, size), caller)
        return _listed(answer.users, answer.total)

    @router.get("/user/search", tags=["users"], summary="Search users (admin)")
    async def search_users(
        caller: Reader, keyword: TextQuery = "", p: Page = 0, size: Size = 0
    ) -> dict[str, Any]:
        answer = await call("ListUsers", _page(p, size, keyword), caller)
        return _listed(answer.users, answer.total)

    @router.post("/user/manage", tags=["users"], summary="enable/disable/promote/demote/delete")
    async def manage_user(caller: Writer, body: ManageBody) -> dict[str, Any]:
        user = await call("ManageUser", admin_pb2.ManageUserRequest(**body.given()), caller)
        return envelope({"role": user.role, "status": user.status})

    @router.get("/user/{user_id}", tags=["users"], summary="One user (admin)")
    async def get_user(caller: Reader, user_id: RecordId) -> dict[str, Any]:
        return envelope(fields(await call("GetUser", admin_pb2.IdRequest(id=user_id), caller)))

    @router.post("/user/", tags=["users"], summary="Create a user (admin)")
    async def create_user(caller: Writer, body: UserBody) -> dict[str, Any]:
        user = await call("CreateUser", admin_pb2.UserInput(**body.given()), caller)
        return envelope(fields(user))

    @router.put("/user/", tags=["users"], summary="Update a user (admin); fields sent change")
    async def update_user(caller: Writer, body: UserBody) -> dict[str, Any]:
        user = await call("UpdateUser", admin_pb2.UserInput(**body.given()), caller)
        return envelope(fields(user))

    @router.delete("/user/{user_id}", tags=["users"], summary="Delete a user (admin)")
    async def delete_user(caller: Writer, user_id: RecordId) -> dict[str, Any]:
        await call("DeleteUser", admin_pb2.IdRequest(id=user_id), caller)
        return envelope()

    # ---- API keys ----
    @router.get("/token/", tags=["tokens"], summary="The caller's API keys (masked)")
    async def list_tokens(
        caller: Reader, p: Page = 0, size: Size = 0, user_id: Int64Query = 0
    ) -> dict[str, Any]:
        answer = await call("ListTokens", _page(p, size, user_id=user_id), caller)
        return _listed(answer.tokens, answer.total)

    @router.get("/token/search", tags=["tokens"], summary="Search the caller's API keys")
    async def search_tokens(
        caller: Reader,
        keyword: TextQuery = "",
        p: Page = 0,
        size: Size = 0,
        user_id: Int64Query = 0,
    ) -> dict[str, Any]:
        answer = await call("ListTokens", _page(p, size, keyword, user_id), caller)
        return _listed(answer.tokens, answer.total)

    @router.get("/token/{token_id}", tags=["tokens"], summary="One API key (masked)")
    async def get_token(caller: Reader, token_id: RecordId) -> dict[str, Any]:
        return envelope(fields(await call("GetToken", admin_pb2.IdRequest(id=token_id), caller)))

    @router.post("/token/", tags=["tokens"], summary="Create an API key; the full key shows once")
    async def create_token(caller: Writer, body: TokenBody) -> dict[str, Any]:
        token = await call("CreateToken", admin_pb2.TokenInput(**body.given()), caller)
        return envelope(fields(token))

    @router.put("/token/", tags=["tokens"], summary="Update an API key; fields sent change")
    async def update_token(caller: Writer, body: TokenBody) -> dict[str, Any]:
        token = await call("UpdateToken", admin_pb2.TokenInput(**body.given()), caller)
        return envelope(fields(token))

    @router.delete("/token/{token_id}", tags=["tokens"], summary="Delete an API key")
    async def delete_token(caller: Writer, token_id: RecordId) -> dict[str, Any]:
        await call("DeleteToken", admin_pb2.IdRequest(id=token_id), caller)
        return envelope()

    # ---- channels ----
    @router.get("/channel/", tags=["channels"], summary="List channels (admin; keys masked)")
    async def list_channels(
        caller: Reader, p: Page = 0, size: Size = 0, order: TextQuery = ""
    ) -> dict[str, Any]:
        request = _page(p, size)
        request.order = order
        answer = await call("ListChannels", request, caller)
        return _listed(answer.channels, answer.total)

    @router.get("/channel/search", tags=["channels"], summary="Search channels (admin)")
    async def search_channels(
        caller: Reader, keyword: TextQuery = "", p: Page = 0, size: Size = 0
    ) -> dict[str, Any]:
        answer = await call("ListChannels", _page(p, size, keyword), caller)
        return _listed(answer.channels, answer.total)

    @router.get("/channel/models", tags=["channels"], summary="Every model a channel serves")
    async def channel_models(caller: Reader) -> dict[str, Any]:
        await require_role(stubs(), caller, ROLE_ADMIN)
        answer = await call("ModelsByType", empty(), caller)
        return envelope([{"id": m, "object": "model", "owned_by": "unigate"} for m in answer.all])

    @router.get("/channel/test", tags=["channels"], summary="Test every channel (admin)")
    async def test_channels(caller: Reader) -> dict[str, Any]:
        answer = await call("TestChannels", empty(), caller)
        return envelope([fields(r) for r in answer.results])

    @router.get("/channel/test/{channel_id}", tags=["channels"], summary="Test one channel")
    async def test_channel(
        caller: Reader, channel_id: RecordId, model: TextQuery = ""
    ) -> dict[str, Any]:
        result = await call(
            "TestChannel", admin_pb2.ChannelTestRequest(id=channel_id, model=model), caller
        )
        # One API's shape: success/message, and the time taken in seconds.
        return {
            "success": result.success,
            "message": result.message,
            "time": result.time_ms / 1000,
            "data": fields(result),
        }

    @router.get("/channel/update_balance", tags=["channels"], summary="Read every balance")
    async def update_balances(caller: Reader) -> dict[str, Any]:
        answer = await call("UpdateChannelBalances", empty(), caller)
        return envelope([fields(b) for b in answer.balances])

    @router.get(
        "/channel/update_balance/{channel_id}",
        tags=["channels"],
        summary="Read one channel's provider balance",
    )
    async def update_balance(caller: Reader, channel_id: RecordId) -> dict[str, Any]:
        answer = await call("UpdateChannelBalance", admin_pb2.IdRequest(id=channel_id), caller)
        return {**envelope(fields(answer)), "balance": answer.balance}

    @router.delete("/channel/disabled", tags=["channels"], summary="Delete disabled channels")
    async def delete_disabled(caller: Writer) -> dict[str, Any]:
        answer = await call("DeleteDisabledChannels", empty(), caller)
        return envelope(answer.count)

    @router.get("/channel/{channel_id}", tags=["channels"], summary="One channel (key masked)")
    async def get_channel(caller: Reader, channel_id: RecordId) -> dict[str, Any]:
        return envelope(
            fields(await call("GetChannel", admin_pb2.IdRequest(id=channel_id), caller))
        )

    @router.post(
        "/channel/{channel_id}/key/{fingerprint}/enable",
        tags=["channels"],
        summary="Put a key of a multi-key channel back into rotation (admin)",
    )
    async def enable_channel_key(
        caller: Writer, channel_id: RecordId, fingerprint: KeyFingerprint
    ) -> dict[str, Any]:
        request = admin_pb2.ChannelKeyRequest(id=channel_id, fingerprint=fingerprint)
        return envelope(fields(await call("EnableChannelKey", request, caller)))

    @router.post("/channel/", tags=["channels"], summary="Create a channel (admin)")
    async def create_channel(caller: Writer, body: ChannelBody) -> dict[str, Any]:
        channel = await call("CreateChannel", admin_pb2.ChannelInput(**body.given()), caller)
        return envelope(fields(channel))

    @router.put("/channel/", tags=["channels"], summary="Update a channel; fields sent change")
    async def update_channel(caller: Writer, body: ChannelBody) -> dict[str, Any]:
        channel = await call("UpdateChannel", admin_pb2.ChannelInput(**body.given()), caller)
        return envelope(fields(channel))

    @router.delete("/channel/{channel_id}", tags=["channels"], summary="Delete a channel")
    async def delete_channel(caller: Writer, channel_id: RecordId) -> dict[str, Any]:
        await call("DeleteChannel", admin_pb2.IdRequest(id=channel_id), caller)
        return envelope()

    # ---- redemption codes ----
    @router.get("/redemption/", tags=["redemptions"], summary="List codes (admin)")
    async def list_redemptions(caller: Reader, p: Page = 0, size: Size = 0) -> dict[str, Any]:
        answer = await call("ListRedemptions", _page(p, size), caller)
        return _listed(answer.redemptions, answer.total)

    @router.get("/redemption/search", tags=["redemptions"], summary="Search codes (admin)")
    async def search_redemptions(
        caller: Reader, keyword: TextQuery = "", p: Page = 0, size: Size = 0
    ) -> dict[str, Any]:
        answer = await call("ListRedemptions", _page(p, size, keyword), caller)
        return _listed(answer.redemptions, answer.total)

    @router.get("/redemption/{redemption_id}", tags=["redemptions"], summary="One code")
    async def get_redemption(caller: Reader, redemption_id: RecordId) -> dict[str, Any]:
        answer = await call("GetRedemption", admin_pb2.IdRequest(id=redemption_id), caller)
        return envelope(fields(answer))

    @router.post("/redemption/", tags=["redemptions"], summary="Mint codes; data lists them")
    async def create_redemptions(caller: Writer, body: RedemptionBody) -> dict[str, Any]:
        given = body.given()
        request = admin_pb2.RedemptionInput(
            name=given.get("name") or "", quota=given.get("quota") or 0, count=body.count
        )
        names = await call("CreateRedemptions", request, caller)
        return envelope(list(names.names))

    @router.put("/redemption/", tags=["redemptions"], summary="Update a code; fields sent change")
    async def update_redemption(caller: Writer, body: RedemptionBody) -> dict[str, Any]:
        given = {k: v for k, v in body.given().items() if k != "count"}
        answer = await call("UpdateRedemption", admin_pb2.RedemptionInput(**given), caller)
        return envelope(fields(answer))

    @router.delete("/redemption/{redemption_id}", tags=["redemptions"], summary="Delete a code")
    async def delete_redemption(caller: Writer, redemption_id: RecordId) -> dict[str, Any]:
        await call("DeleteRedemption", admin_pb2.IdRequest(id=redemption_id), caller)
        return envelope()

    return router
