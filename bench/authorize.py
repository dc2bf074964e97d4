"""Benchmark of auth's Authorize alone: calls/s and latency p50/p99 at 1 and 32 in flight,
as unary gRPC calls and multiplexed on AuthorizeMany streams (what the gateway uses), with
internal mutual TLS (as deployed) and without it (auth restarted with INTERNAL_TLS=off on the
same port), in the same run, so the cost of mTLS reads off the table.

Runs a real auth process (own database, namespace and port) against the local Postgres and
Redis, with a warm cache: `.venv/bin/python bench/authorize.py [--calls 5000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    prepare_database,
    with_database,
)

from unigate.certs import TlsFiles
from unigate.grpc_mux import AUTHORIZE, AUTHORIZE_WIRE, MuxClient
from unigate.grpcutil import client_channel
from unigate.v1 import auth_pb2, auth_pb2_grpc
from unigate_cli.devstack import Stack, StackConfig, StackPorts

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def measure(
    port: int,
    tls: TlsFiles | None,
    key: str,
    pid: int,
    calls: int,
    concurrency: int,
    multiplexed: bool,
) -> str:
    # As the gateway, the one caller auth lets Authorize.
    channel = client_channel(f"127.0.0.1:{port}", tls, "auth")
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    many: MuxClient[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse] = MuxClient(
        lambda requests: stub.AuthorizeMany(requests, wait_for_ready=True),
        AUTHORIZE_WIRE,
        method=AUTHORIZE,
    )
    counter = iter(range(10**9))

    async def authorize() -> float:
        started = time.perf_counter()
        request = auth_pb2.AuthorizeRequest(
            api_key=key,
            model="gpt-4o-mini",
            client_ip="127.0.0.1",
            request_id=f"bench-{secrets.token_hex(4)}-{next(counter)}",
            endpoint="chat.completions",
            estimated_prompt_tokens=20,
        )
        if multiplexed:
            decision = await many.call(request, 10.0)
        else:
            decision = await stub.Authorize(request, wait_for_ready=True)
        if not decision.allowed:
            raise RuntimeError(decision.error.message)
        return time.perf_counter() - started

    for _ in range(200):  # warm the caches and connections
        await authorize()
    latencies: list[float] = []

    async def worker(n: int) -> None:
        for _ in range(n):
            latencies.append(await authorize())

    cpu_before = cpu_seconds(pid) or 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = ((cpu_seconds(pid) or 0.0) - cpu_before) / len(latencies) * 1000
    await many.close()
    await channel.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    transport = "multiplexed" if multiplexed else "unary"
    return (
        f"| {'on' if tls else 'off'} | {transport} | {concurrency}"
        f" | {len(latencies) / elapsed:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    suffix = secrets.token_hex(4)
    namespace, db_name = f"bench{suffix}", f"unigate_bench_{suffix}"
    dsn = with_database(ADMIN_DSN, db_name)
    secret_key = secrets.token_urlsafe(32)
    fixture = asyncio.run(prepare_database(dsn, secret_key, "http://127.0.0.1:9"))
    stack = Stack(
        StackConfig(
            sql_dsn=dsn,
            namespace=namespace,
            secret_key=secret_key,
            ports=StackPorts.free(),
            simulator=None,
            log_dir=Path(tempfile.mkdtemp(prefix="unigate-authbench-")),
        )
    )
    try:
        print("| mTLS | transport | in flight | calls/s | p50 ms | p99 ms | auth CPU ms/call |")
        print("|---|---|---:|---:|---:|---:|---:|")
        port = stack.config.ports.auth
        for internal_tls in (True, False):
            stack.config.extra_env["INTERNAL_TLS"] = "on" if internal_tls else "off"
            stack.start_process("auth")
            stack.wait_ready(30, ["auth"])
            pid = stack.procs["auth"].pid
            tls = stack.tls_files("gateway") if internal_tls else None
            for multiplexed in (False, True):
                for concurrency in (1, 32):
                    row = measure(port, tls, fixture.key, pid, args.calls, concurrency, multiplexed)
                    print(uvloop.run(row), flush=True)
            stack.stop_process("auth")
    finally:
        stack.stop()
        asyncio.run(drop_database(ADMIN_DSN, db_name))
        delete_redis_keys(REDIS_URL, namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
