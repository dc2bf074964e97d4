"""Options (One API's system settings, root only) and the user groups they name. Credentials
are never read back (:mod:`.option_secrets`); an update is broadcast so every auth reloads
them."""

from __future__ import annotations

import orjson

from unigate import unit_prices
from unigate.alerts import parse_webhooks
from unigate.v1 import admin_pb2
from unigate_auth.admin import option_secrets, records
from unigate_auth.admin.option_defaults import option_defaults
from unigate_auth.admin.rpc import AdminBase, Empty, invalid, rpc
from unigate_auth.admin.sessions import ROLE_ADMIN, ROLE_ROOT, Caller

_JSON_OPTIONS = frozenset(
    {
        "ModelRatio",
        "CompletionRatio",
        "CacheRatio",
        "CreateCacheRatio",
        "AudioRatio",
        "AudioCompletionRatio",
        "UnitPrice",
        "GroupRatio",
        "GroupRateLimits",
    }
)


class OptionRpcs(AdminBase):
    @rpc(ROLE_ROOT)
    async def GetOptions(self, caller: Caller, _: Empty) -> admin_pb2.OptionList:
        rows = await self._pool.fetch("SELECT key, value FROM options ORDER BY key")
        # Every option, set or not (One API lists all with their defaults), so the console's
        # settings open on the values in force, built-in price tables included.
        options = option_defaults()
        options.update((r["key"], r["value"]) for r in rows)
        options = option_secrets.readable(options)
        return admin_pb2.OptionList(
            options=[admin_pb2.OptionEntry(key=k, value=v) for k, v in sorted(options.items())]
        )

    @rpc(ROLE_ROOT)
    async def UpdateOption(self, caller: Caller, req: admin_pb2.OptionEntry) -> Empty:
        if not req.key or len(req.key) > 128:
            raise invalid("an option needs a key of at most 128 characters")
        if req.key in _JSON_OPTIONS:
            records.json_object(req.value, req.key)
        if req.key == "UnitPrice":
            try:
                unit_prices.parse_unit_prices(req.value)
            except ValueError as exc:
                raise invalid(str(exc)) from None
        value = req.value
        if req.key == option_secrets.WEBHOOKS:
            try:
                # The masks a read showed stand for the stored URLs and secrets.
                value = option_secrets.restored_webhooks(value, await self._option(req.key))
                parse_webhooks(value)
            except ValueError as exc:
                raise invalid(str(exc)) from None
        await self._pool.execute(
            "INSERT INTO options (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            req.key,
            value,
        )
        await self._broadcast("option", [])
        return Empty()

    @rpc(ROLE_ADMIN)
    async def ListGroups(self, caller: Caller, _: Empty) -> admin_pb2.Names:
        groups = {"default"}
        raw = await self._option("GroupRatio")
        if raw:
            try:
                value = orjson.loads(raw)
                if isinstance(value, dict):
                    groups.update(str(k) for k in value)
            except orjson.JSONDecodeError:
                pass
        rows = await self._pool.fetch('SELECT DISTINCT "group" FROM users')
        groups.update(r["group"] for r in rows)
        return admin_pb2.Names(names=sorted(groups))
