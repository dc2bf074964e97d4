"""The channel RPCs: list, read, create, edit and delete channels, test them through a relay,
read their providers' balances. Every SQL statement is the channel table's
(``unigate_auth.admin.channels``); this module validates the input and broadcasts changes.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
import orjson

from unigate.channel_types import balance_types, channel_type
from unigate.crypto import encrypt_secret
from unigate.keys import MASK
from unigate.v1 import admin_pb2
from unigate_auth.admin import records
from unigate_auth.admin.balances import BalanceUnavailable, read_balance
from unigate_auth.admin.channels import ChannelUnderTest
from unigate_auth.admin.records import page_of
from unigate_auth.admin.rpc import (
    AdminBase,
    Empty,
    Failure,
    check_name,
    check_status,
    invalid,
    not_found,
    rpc,
)
from unigate_auth.admin.sessions import ROLE_ADMIN, ROLE_USER, STATUS_ENABLED, Caller
from unigate_auth.lists import split_list

_TEST_CONCURRENCY = 4
# Channel list orders a client may ask for (never interpolated from the request itself).
_CHANNEL_ORDERS = {
    "": "id DESC",
    "id": "id DESC",
    "used_quota": "used_quota DESC, id DESC",
    "priority": "priority DESC, id DESC",
    "response_time": "response_time DESC, id DESC",
    "balance": "balance DESC, id DESC",
}


class ChannelRpcs(AdminBase):
    async def _channel_row(self, channel_id: int) -> asyncpg.Record:
        row = await self._channels.row(channel_id)
        if row is None:
            raise not_found("channel")
        return row

    async def _channel(self, channel_id: int) -> admin_pb2.ChannelInfo:
        return records.channel_message(await self._channel_row(channel_id), self._secret_key)

    @rpc(ROLE_ADMIN)
    async def ListChannels(
        self, caller: Caller, req: admin_pb2.ListRequest
    ) -> admin_pb2.ChannelList:
        limit, offset = page_of(req.page, req.size)
        order = _CHANNEL_ORDERS.get(req.order)
        if order is None:
            raise invalid(
                f"order must be one of: {', '.join(o or '(empty)' for o in _CHANNEL_ORDERS)}"
            )
        total, rows = await self._channels.page(req.keyword, order, limit, offset)
        channels = [records.channel_message(r, self._secret_key) for r in rows]
        return admin_pb2.ChannelList(channels=channels, total=total)

    @rpc(ROLE_ADMIN)
    async def GetChannel(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.ChannelInfo:
        return await self._channel(req.id)

    @rpc(ROLE_ADMIN)
    async def CreateChannel(
        self, caller: Caller, req: admin_pb2.ChannelInput
    ) -> admin_pb2.ChannelInfo:
        if not req.key.strip():
            raise invalid("a channel needs a key")
        channel_id = await self._channels.create(
            secret_key=self._secret_key,
            type=req.type,
            name=check_name(req.name, "channel") if req.HasField("name") else "",
            key=req.key.strip(),
            models=req.models,
            base_url=req.base_url.strip(),
            group=req.group or "default",
            priority=req.priority,
            weight=req.weight if req.HasField("weight") else 1,
            model_mapping=records.json_object(req.model_mapping, "model_mapping"),
            config=records.json_object(req.config, "config"),
            system_prompt=req.system_prompt,
        )
        if req.timeout_ms or (req.HasField("status") and req.status != STATUS_ENABLED):
            await self._update_channel(
                admin_pb2.ChannelInput(
                    id=channel_id, timeout_ms=req.timeout_ms, status=req.status or STATUS_ENABLED
                )
            )
        await self._broadcast("channel", [channel_id])
        return await self._channel(channel_id)

    @rpc(ROLE_ADMIN)
    async def UpdateChannel(
        self, caller: Caller, req: admin_pb2.ChannelInput
    ) -> admin_pb2.ChannelInfo:
        await self._update_channel(req)
        await self._broadcast("channel", [req.id])
        return await self._channel(req.id)

    async def _unchanged_key(self, req: admin_pb2.ChannelInput) -> bool:
        """Whether ``req.key`` is the masked key a read showed (One API's clients, and
        one-api-cli's ``Channel.update``, PUT back the record they read): storing that mask
        would replace a working key with a useless one, so it means "keep the key"."""
        key = req.key.strip()
        if MASK not in key:
            return False
        row = await self._channel_row(req.id)
        shown = records.channel_message(row, self._secret_key).key
        if key != shown:
            raise invalid(
                "the key looks masked but is not this channel's masked key: send the full key,"
                " or leave it out (or empty) to keep the stored one"
            )
        return True

    async def _update_channel(self, req: admin_pb2.ChannelInput) -> None:
        sets: dict[str, object] = {}
        if req.HasField("type"):
            if channel_type(req.type) is None:
                raise invalid(f"unknown channel type {req.type}")
            sets["type"] = req.type
        if req.HasField("name"):
            sets["name"] = check_name(req.name, "channel")
        if req.HasField("key") and req.key.strip() and not await self._unchanged_key(req):
            sets["key_enc"] = encrypt_secret(req.key.strip(), self._secret_key)
        if req.HasField("status"):
            sets["status"] = check_status(req.status, "channel")
            sets["status_reason"] = ""
            sets["status_time"] = int(time.time())
        if req.HasField("base_url"):
            # Its scheme is checked against the channel's type by the table, once it is known.
            sets["base_url"] = req.base_url.strip()
        if req.HasField("models"):
            models = split_list(req.models)
            if not models:
                raise invalid("a channel needs at least one model")
            sets["models"] = ",".join(models)
        if req.HasField("group"):
            sets['"group"'] = ",".join(split_list(req.group)) or "default"
        if req.HasField("model_mapping"):
            sets["model_mapping"] = records.json_object(req.model_mapping, "model_mapping")
        if req.HasField("config"):
            sets["config"] = records.json_object(req.config, "config")
        if req.HasField("priority"):
            sets["priority"] = req.priority
        if req.HasField("weight"):
            if req.weight < 0:
                raise invalid("weight cannot be negative")
            sets["weight"] = req.weight
        if req.HasField("system_prompt"):
            sets["system_prompt"] = req.system_prompt
        if req.HasField("timeout_ms"):
            sets["timeout_ms"] = max(req.timeout_ms, 0)
        if not await self._channels.update(req.id, sets):
            raise not_found("channel")

    @rpc(ROLE_ADMIN)
    async def DeleteChannel(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        if await self._channels.delete(req.id):
            await self._broadcast("channel", [req.id])
            return Empty()
        raise not_found("channel")

    @rpc(ROLE_ADMIN)
    async def DeleteDisabledChannels(self, caller: Caller, _: Empty) -> admin_pb2.Count:
        ids = await self._channels.delete_disabled()
        if ids:
            await self._broadcast("channel", ids)
        return admin_pb2.Count(count=len(ids))

    @rpc(ROLE_ADMIN)
    async def TestChannel(
        self, caller: Caller, req: admin_pb2.ChannelTestRequest
    ) -> admin_pb2.ChannelTestResult:
        return await self._test_channel(req)

    async def _test_channel(self, req: admin_pb2.ChannelTestRequest) -> admin_pb2.ChannelTestResult:
        row = await self._channel_row(req.id)
        models = split_list(row["models"])
        model = req.model or (models[0] if models else "")
        if model not in models:
            raise invalid(f"the channel does not serve {model!r}")
        mapping = orjson.loads(row["model_mapping"] or "{}")
        probe = await self._tester.probe(
            ChannelUnderTest(
                id=row["id"],
                type=row["type"],
                model=model,
                upstream_model=str(mapping.get(model) or model),
                config_version=row["config_version"],
                name=row["name"],
            )
        )
        await self._channels.record_test(row["id"], probe.ms, int(time.time()), probe.error)
        if not probe.passed:
            return admin_pb2.ChannelTestResult(
                id=row["id"], success=False, time_ms=probe.ms, message=probe.error
            )
        return admin_pb2.ChannelTestResult(id=row["id"], success=True, time_ms=probe.ms)

    @rpc(ROLE_ADMIN)
    async def TestChannels(self, caller: Caller, _: Empty) -> admin_pb2.ChannelTestResults:
        gate = asyncio.Semaphore(_TEST_CONCURRENCY)

        async def one(channel_id: int) -> admin_pb2.ChannelTestResult:
            async with gate:
                try:
                    return await self._test_channel(admin_pb2.ChannelTestRequest(id=channel_id))
                except Failure as exc:
                    return admin_pb2.ChannelTestResult(id=channel_id, message=str(exc))

        ids = await self._channels.ids()
        return admin_pb2.ChannelTestResults(results=await asyncio.gather(*map(one, ids)))

    @rpc(ROLE_ADMIN)
    async def UpdateChannelBalance(
        self, caller: Caller, req: admin_pb2.IdRequest
    ) -> admin_pb2.ChannelBalance:
        return await self._update_balance(req.id)

    async def _update_balance(self, channel_id: int) -> admin_pb2.ChannelBalance:
        row = await self._channel_row(channel_id)
        keys = records.channel_keys(row, self._secret_key)
        try:
            balance = await read_balance(row["type"], row["base_url"], keys[0] if keys else "")
        except BalanceUnavailable as exc:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        now = int(time.time())
        # A balance is a reading, not configuration: no broadcast.
        await self._channels.set_balance(channel_id, balance, now)
        return admin_pb2.ChannelBalance(id=channel_id, balance=balance, updated_time=now)

    @rpc(ROLE_ADMIN)
    async def UpdateChannelBalances(self, caller: Caller, _: Empty) -> admin_pb2.ChannelBalances:
        out = []
        for channel_id in await self._channels.ids(balance_types()):
            try:
                out.append(await self._update_balance(channel_id))
            except Failure as exc:
                out.append(admin_pb2.ChannelBalance(id=channel_id, error=str(exc)))
        return admin_pb2.ChannelBalances(balances=out)

    @rpc(ROLE_ADMIN)
    async def EnableChannelKey(
        self, caller: Caller, req: admin_pb2.ChannelKeyRequest
    ) -> admin_pb2.ChannelInfo:
        channel = await self._channel(req.id)
        if not any(k.fingerprint == req.fingerprint for k in channel.keys):
            raise not_found("key")
        if await self._channels.enable_key(req.id, req.fingerprint):
            await self._broadcast("channel", [req.id])
            channel = await self._channel(req.id)
        return channel

    @rpc(ROLE_USER)
    async def ModelsByType(self, caller: Caller, _: Empty) -> admin_pb2.ChannelModels:
        by_type = await self._channels.models_by_type()
        out = admin_pb2.ChannelModels(all=sorted(set().union(*by_type.values())))
        for type_id, models in by_type.items():
            out.by_type[type_id].names.extend(sorted(models))
        return out

    @rpc(ROLE_USER)
    async def AvailableModels(self, caller: Caller, _: Empty) -> admin_pb2.Names:
        return admin_pb2.Names(names=await self._channels.models_for_group(caller.group))
