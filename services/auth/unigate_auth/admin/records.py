"""Postgres rows of the managed records and their admin.proto messages.

Every read goes through these converters, which copy only the public columns: a channel's
``key_enc``, a user's ``password_hash`` and ``access_token_hash`` and a token's ``key_hash``
are never selected into a message.
"""

from __future__ import annotations

import asyncpg
import orjson

from unigate.crypto import decrypt_secret
from unigate.keys import key_fingerprint, mask_key
from unigate.v1 import admin_pb2

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

USER_COLUMNS = (
    'id, username, display_name, role, status, email, "group", quota, used_quota,'
    " request_count, rpm_limit, tpm_limit, created_time, must_change_password,"
    " github_id, lark_id, wechat_id, oidc_id, password_hash <> '' AS has_password, inviter_id,"
    " coalesce(aff_code, '') AS aff_code"
)
TOKEN_COLUMNS = (
    "id, user_id, key_prefix, name, status, created_time, accessed_time, expired_time,"
    " remain_quota, unlimited_quota, used_quota, models, subnet, rpm_limit, tpm_limit"
)
CHANNEL_COLUMNS = (
    'id, type, name, key_enc, status, status_reason, base_url, models, "group",'
    " model_mapping::text AS model_mapping, priority, weight, config::text AS config,"
    " system_prompt, timeout_ms, used_quota, response_time, test_time, balance,"
    " balance_updated_time, created_time, config_version, test_error,"
    " key_status::text AS key_status"
)
REDEMPTION_COLUMNS = (
    "id, user_id, key, status, name, quota, created_time, redeemed_time, redeemed_by"
)


def page_of(page: int, size: int) -> tuple[int, int]:
    """(limit, offset) of a 0-based page; a negative page is the first."""
    limit = min(size if size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return limit, max(page, 0) * limit


async def fetch_page(
    pool: asyncpg.Pool,
    table: str,
    columns: str,
    where: str,
    args: list[object],
    order: str,
    limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]]:
    """(total, rows) of one page of ``table``: every fragment is the calling module's own SQL,
    never a request's text (which travels in ``args``)."""
    total: int = await pool.fetchval(f"SELECT count(*) FROM {table} {where}", *args)
    rows = await pool.fetch(
        f"SELECT {columns} FROM {table} {where} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
        *args,
    )
    return total, rows


def like(keyword: str) -> str:
    """A LIKE pattern matching ``keyword`` anywhere, its own wildcards taken literally."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def user_message(r: asyncpg.Record) -> admin_pb2.User:
    return admin_pb2.User(
        id=r["id"],
        username=r["username"],
        display_name=r["display_name"],
        role=r["role"],
        status=r["status"],
        email=r["email"],
        group=r["group"],
        quota=r["quota"],
        used_quota=r["used_quota"],
        request_count=r["request_count"],
        rpm_limit=r["rpm_limit"],
        tpm_limit=r["tpm_limit"],
        created_time=r["created_time"],
        inviter_id=r["inviter_id"],
        aff_code=r["aff_code"],
        must_change_password=r["must_change_password"],
        github_id=r["github_id"] or "",
        lark_id=r["lark_id"] or "",
        wechat_id=r["wechat_id"] or "",
        oidc_id=r["oidc_id"] or "",
        has_password=r["has_password"],
    )


def masked_token_key(prefix: str) -> str:
    """What a read shows of an API key: the stored display prefix and a mask."""
    return prefix + "*" * 8


def token_message(r: asyncpg.Record, *, key: str | None = None) -> admin_pb2.Token:
    return admin_pb2.Token(
        id=r["id"],
        user_id=r["user_id"],
        key=key if key is not None else masked_token_key(r["key_prefix"]),
        name=r["name"],
        status=r["status"],
        created_time=r["created_time"],
        accessed_time=r["accessed_time"],
        expired_time=r["expired_time"],
        remain_quota=r["remain_quota"],
        unlimited_quota=r["unlimited_quota"],
        used_quota=r["used_quota"],
        models=r["models"],
        subnet=r["subnet"],
        rpm_limit=r["rpm_limit"],
        tpm_limit=r["tpm_limit"],
    )


def channel_keys(r: asyncpg.Record, secret_key: str) -> list[str]:
    text = decrypt_secret(r["key_enc"], secret_key)
    return [k.strip() for k in text.splitlines() if k.strip()]


def channel_message(r: asyncpg.Record, secret_key: str) -> admin_pb2.ChannelInfo:
    try:
        keys = channel_keys(r, secret_key)
    except Exception:
        # A key encrypted under another SECRET_KEY: the record is still listed, without it.
        keys = []
    return admin_pb2.ChannelInfo(
        id=r["id"],
        type=r["type"],
        name=r["name"],
        key=mask_key(keys[0]) if keys else "",
        key_count=len(keys),
        status=r["status"],
        status_reason=r["status_reason"],
        base_url=r["base_url"],
        models=r["models"],
        group=r["group"],
        model_mapping=r["model_mapping"],
        priority=r["priority"],
        weight=r["weight"],
        config=r["config"],
        system_prompt=r["system_prompt"],
        timeout_ms=r["timeout_ms"],
        used_quota=r["used_quota"],
        response_time=r["response_time"],
        test_time=r["test_time"],
        balance=r["balance"],
        balance_updated_time=r["balance_updated_time"],
        created_time=r["created_time"],
        config_version=r["config_version"],
        test_error=r["test_error"],
        keys=key_states(keys, r["key_status"]),
    )


def key_states(keys: list[str], key_status_json: str) -> list[admin_pb2.ChannelKeyState]:
    """Each key, masked, with its state: enabled unless taken out of rotation."""
    states = orjson.loads(key_status_json or "{}")
    out = []
    for key in keys:
        fp = key_fingerprint(key)
        st = states.get(fp, {})
        out.append(
            admin_pb2.ChannelKeyState(
                fingerprint=fp,
                masked=mask_key(key),
                status=int(st.get("status", 1)),
                reason=str(st.get("reason", "")),
                status_time=int(st.get("time", 0)),
            )
        )
    return out


def redemption_message(r: asyncpg.Record) -> admin_pb2.Redemption:
    return admin_pb2.Redemption(**{k: r[k] for k in REDEMPTION_COLUMNS.split(", ")})


def json_object(text: str, what: str) -> str:
    """``text`` if it is a JSON object (normalised), else a ValueError naming ``what``."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        raise ValueError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return orjson.dumps(value).decode()
