"""The README's first-call path: the admin CLI creates a channel and a key that work."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import httpx

from tests.e2e.conftest import SIM_KEY, ThreadedServer
from unigate_cli.devstack import Stack


def run_cli(stack: Stack, *args: str) -> str:
    env = {
        **os.environ,
        "SQL_DSN": stack.config.sql_dsn,
        "SECRET_KEY": stack.config.secret_key,
        "UNIGATE_NAMESPACE": stack.config.namespace,
        "NATS_URL": stack.config.nats_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "unigate_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
    env = {**os.environ, "SQL_DSN": stack.config.sql_dsn, "SECRET_KEY": "x"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "unigate_cli",
            "channel",
            "add",
            "--type",
            "9999",
            "--name",
            "x",
            "--key",
            "k",
            "--models",
            "m",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown channel type" in done.stderr
