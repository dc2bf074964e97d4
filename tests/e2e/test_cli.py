"""The README's first-call path: the admin CLI creates a channel and a key that work."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import httpx

from tests.e2e.conftest import SIM_KEY, ThreadedServer
from unigate.keys import hash_api_key
from unigate_cli.devstack import Stack


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``unigate ARGS`` as the operator: auth and billing over gRPC with the stack's ``admin``
    certificate, and no database, Redis or NATS settings at all (only ``migrate`` and
    ``install`` open the database)."""
    env = {k: v for k, v in os.environ.items() if k not in FORBIDDEN}
    env.update(
        {
            "AUTH_ADDR": stack.grpc_address("auth"),
            "BILLING_ADDR": stack.grpc_address("billing"),
            "TLS_DIR": str(stack.config.tls_dir),
            # Nowhere: a command that still went to the database would fail.
            "SQL_DSN": "postgresql://nobody@127.0.0.1:1/nowhere",
            "REDIS_CONN_STRING": "redis://127.0.0.1:1/0",
            "NATS_URL": "nats://127.0.0.1:1",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "unigate_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


FORBIDDEN = {"SQL_DSN", "SECRET_KEY", "REDIS_CONN_STRING", "NATS_URL", "TLS_DIR"}


def run_cli(stack: Stack, *args: str) -> str:
    done = cli(stack, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_cli_channel_and_token_make_a_working_first_call(
    stack: Stack, simulator: ThreadedServer, pg: asyncpg.Pool
) -> None:
    channel_id = run_cli(
        stack,
        "channel",
        "add",
        "--type",
        "1",
        "--name",
        "cli-sim",
        "--base-url",
        simulator.url,
        "--key",
        SIM_KEY,
        "--models",
        "cli-model",
        "--model-mapping",
        '{"cli-model": "gpt-4o-mini"}',
    )
    assert channel_id.isdigit()
    stored = await pg.fetchval("SELECT key_enc FROM channels WHERE id = $1", int(channel_id))
    assert SIM_KEY.encode() not in stored, "provider keys must be encrypted at rest"

    key = run_cli(stack, "token", "create", "--name", "cli", "--quota", "1000000")
    assert key.startswith("sk-") and len(key) == 51
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        resp = await http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "cli-model", "messages": [{"role": "user", "content": "Hello!"}]},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "Echo: Hello!"
    # The mapping sent the upstream model name to the provider.
    assert resp.json()["model"] == "gpt-4o-mini"


def test_cli_rejects_unknown_channel_type(stack: Stack) -> None:
    done = cli(
        stack, "channel", "add", "--type", "9999", "--name", "x", "--key", "k", "--models", "m"
    )
    assert done.returncode != 0
    assert "INVALID_ARGUMENT" in done.stderr and "unknown channel type" in done.stderr


async def test_cli_quota_changes_go_through_auth_as_root(stack: Stack, pg: asyncpg.Pool) -> None:
    """``user quota`` and ``token quota`` (README): AdminService's AdjustQuota writes the
    balance and a manage row naming root, the operator's identity there."""
    key = run_cli(stack, "token", "create", "--name", "cli-quota", "--unlimited")
    token = await pg.fetchrow(
        "SELECT id, remain_quota, unlimited_quota FROM tokens WHERE key_hash = $1",
        hash_api_key(key),
    )
    assert token is not None and token["unlimited_quota"]
    before = token["remain_quota"]
    out = run_cli(stack, "token", "quota", "--token", str(token["id"]), "--add", "1234")
    assert out == f"{before} -> {before + 1234} (+1234)"
    assert run_cli(stack, "token", "quota", "--token", str(token["id"]), "--set", "7") == (
        f"{before + 1234} -> 7 ({7 - before - 1234:+d})"
    )
    assert await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token["id"]) == 7

    user = await pg.fetchrow("SELECT id, quota FROM users WHERE username = 'root'")
    assert user is not None
    out = run_cli(stack, "user", "quota", "--user", "root", "--add", "500")
    assert out == f"{user['quota']} -> {user['quota'] + 500} (+500)"
    row = await pg.fetchrow(
        "SELECT type, user_id, quota, content FROM logs WHERE type = 3 AND user_id = $1"
        " ORDER BY id DESC LIMIT 1",
        user["id"],
    )
    assert row is not None and (row["quota"], row["type"]) == (500, 3)
    assert row["content"].startswith("'root' (#")
    # An unknown user is the operator's mistake, said plainly.
    done = cli(stack, "user", "quota", "--user", "nobody-by-this-name", "--add", "1")
    assert done.returncode != 0 and "no user named 'nobody-by-this-name'" in done.stderr
    done = cli(stack, "token", "quota", "--token", "999999999", "--add", "1")
    assert done.returncode != 0 and "no token with id 999999999" in done.stderr
