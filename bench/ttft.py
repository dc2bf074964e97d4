"""Stream time-to-first-token: what the gateway path adds before the first content chunk.

The OpenAI simulator (a separate process, streaming one token per chunk) is the upstream. A
whole stack is started on free ports with its own database and namespace, with one channel to
the simulator. The same streamed chat request is then sent directly to the simulator and
through the gateway, alternately, at 1 and at 8 in flight; TTFT is the time from sending the
request to reading the first chunk that carries content. The relay forwards OpenAI-shaped
streams as bytes, so the difference is the key check, reservation and two gRPC hops. The CPU
the services (gateway, auth, relay, billing) spend per streamed request is read from /proc
over the same run (the direct requests cost them nothing).

    .venv/bin/python bench/ttft.py [--requests 300] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from otlp_sink import PRODUCTION_SAMPLE_RATIO, Sink
from run import (
    PROFILED,
    cpu_snapshot,
    delete_redis_keys,
    delete_stream,
    drop_database,
    machine_info,
    start_profilers,
    with_database,
)

from tests import admin_writes
from unigate.db import create_pool
from unigate.db.migrate import ensure_database, migrate
from unigate_cli.devstack import Stack, StackConfig, StackPorts, free_port

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
MODEL = "gpt-4o-mini"
BODY = {
    "model": MODEL,
    "stream": True,
    "messages": [{"role": "user", "content": "Stream a sentence of about twenty tokens back."}],
}
RESULTS_FILE = Path(__file__).parent / "ttft-results.md"
# The bar (issue 22), in the production configuration: added TTFT p50 at one in flight, and
# "flat" up to 8 in flight, read as: the added p50 at 8 within this much of the one at 1.
BAR_ADDED_P50_MS = 2.0
BAR_FLAT_MS = 2.0


async def prepare(dsn: str, secret_key: str, sim_url: str, sim_key: str) -> str:
    await ensure_database(dsn)
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await admin_writes.create_channel(
            pool,
            secret_key=secret_key,
            type=1,
            name="sim",
            key=sim_key,
            models=MODEL,
            base_url=sim_url,
        )
        token = await admin_writes.create_token(pool, user_id=1, name="ttft", unlimited_quota=True)
    finally:
        await pool.close()
    return token.key


async def first_token(client: httpx.AsyncClient, url: str, key: str) -> float:
    started = time.perf_counter()
    async with client.stream(
        "POST", url, json=BODY, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"{url}: {resp.status_code} {(await resp.aread())[:300]!r}")
        ttft = 0.0
        async for line in resp.aiter_lines():
            if not ttft and line.startswith("data:") and '"content":"' in line:
                ttft = time.perf_counter() - started
        if not ttft:
            raise RuntimeError(f"{url}: no content chunk")
        return ttft


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


async def measure(
    targets: dict[str, tuple[str, str]],
    requests: int,
    in_flight: int,
    pids: dict[str, int],
    cpu: dict[str, float],
) -> dict[str, list[float]]:
    """TTFT of each target's requests; ``cpu`` gets each service's CPU seconds over them."""
    found: dict[str, list[float]] = {name: [] for name in targets}
    limits = httpx.Limits(max_connections=in_flight * 2, max_keepalive_connections=in_flight * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for url, key in targets.values():  # warm connections and caches
            for _ in range(20):
                await first_token(client, url, key)
        before = cpu_snapshot(pids)

        async def worker(n: int) -> None:
            for _ in range(n):
                # Alternate targets so that both see the same machine load.
                for name, (url, key) in targets.items():
                    found[name].append(await first_token(client, url, key))

        await asyncio.gather(*(worker(requests // in_flight) for _ in range(in_flight)))
        after = cpu_snapshot(pids)
    cpu.update({name: after[name] - before[name] for name in after if name in before})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy each service during the measured requests into this directory (raw"
        " collapsed stacks per service and in-flight count; the figures of a profiled run are"
        " skewed by the sampling)",
    )
    parser.add_argument(
        "--internal-tls",
        choices=("on", "off"),
        default="on",
        help="mutual TLS between the services (default on, as in production)",
    )
    parser.add_argument(
        "--tracing",
        choices=("on", "off"),
        default="on",
        help="trace export to a local OTLP sink (default on, as in production)",
    )
    parser.add_argument(
        "--trace-sample",
        type=float,
        default=PRODUCTION_SAMPLE_RATIO,
        help=f"share of requests traced (default {PRODUCTION_SAMPLE_RATIO:g})",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unigate-ttft-"))
    sink = Sink(free_port(), workdir, args.trace_sample) if args.tracing == "on" else None
    production = args.internal_tls == "on" and args.tracing == "on"
    configuration = (
        ("production" if production else "NOT the production configuration")
        + f": internal mTLS {args.internal_tls}, metrics on, tracing {args.tracing}"
        + (f" ({args.trace_sample:.0%} of requests sampled)" if sink is not None else "")
    )
    suffix = secrets.token_hex(4)
    namespace, db_name = f"bench{suffix}", f"unigate_bench_{suffix}"
    dsn = with_database(ADMIN_DSN, db_name)
    secret_key = secrets.token_urlsafe(32)
    config = StackConfig(
        sql_dsn=dsn,
        namespace=namespace,
        secret_key=secret_key,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        ports=StackPorts.free(),
        simulator_key="sk-sim-" + secrets.token_hex(8),
        log_dir=workdir / "logs",
        internal_tls=args.internal_tls == "on",
        extra_env=sink.env() if sink is not None else {},
    )
    stack = Stack(config)
    lines = [
        "# Stream time-to-first-token",
        "",
        "Written by `bench/ttft.py`: the same streamed chat request sent directly to the OpenAI "
        "simulator and through the gateway, alternately, in the same run.",
        "",
        *machine_info(),
        f"- configuration: {configuration}",
        "",
        "| in flight | direct p50 ms | direct p99 ms | gateway p50 ms | gateway p99 ms "
        "| added p50 ms | added p99 ms | CPU ms/stream (gateway, auth, relay, billing) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    added: dict[int, float] = {}
    print(configuration, flush=True)
    try:
        if sink is not None:
            sink.start()
        key = asyncio.run(prepare(dsn, secret_key, stack.simulator_url, config.simulator_key))
        # Generous: on a machine shared with other stacks the services import slowly.
        stack.start(timeout=180)
        targets = {
            "direct": (stack.simulator_url + "/v1/chat/completions", config.simulator_key),
            "gateway": (stack.gateway_url + "/v1/chat/completions", key),
        }
        pids = {name: proc.pid for name, proc in stack.procs.items() if name in PROFILED}
        for in_flight in (1, 8):
            # py-spy ends at the end of the measurement (SIGINT), not after a fixed time.
            spies = start_profilers(args.profile, f"inflight{in_flight}", 3600, pids)
            cpu: dict[str, float] = {}
            try:
                found = asyncio.run(measure(targets, args.requests, in_flight, pids, cpu))
            finally:
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                for spy in spies:
                    try:
                        spy.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        spy.kill()
            d50, d99 = percentile(found["direct"], 0.5), percentile(found["direct"], 0.99)
            g50, g99 = percentile(found["gateway"], 0.5), percentile(found["gateway"], 0.99)
            streams = len(found["gateway"])
            per = [cpu.get(name, 0.0) * 1000 / streams for name in PROFILED]
            row = (
                f"| {in_flight} | {d50:.2f} | {d99:.2f} | {g50:.2f} | {g99:.2f} "
                f"| {g50 - d50:.2f} | {g99 - d99:.2f} "
                f"| {sum(per):.2f} ({', '.join(f'{v:.2f}' for v in per)}) |"
            )
            print(row, flush=True)
            lines.append(row)
            added[in_flight] = g50 - d50
    finally:
        stack.stop()
        if sink is not None:
            sink.stop()
        asyncio.run(drop_database(ADMIN_DSN, db_name))
        delete_redis_keys(REDIS_URL, namespace)
        asyncio.run(delete_stream(NATS_URL, namespace))
    verdicts = []
    if 1 in added:
        ok = "met" if added[1] <= BAR_ADDED_P50_MS else "NOT met"
        verdicts.append(
            f"added TTFT p50 at 1 in flight: {added[1]:.2f} ms"
            f" (bar ≤ {BAR_ADDED_P50_MS:g} ms: {ok})"
        )
    if 1 in added and 8 in added:
        rise = added[8] - added[1]
        ok = "met" if rise <= BAR_FLAT_MS else "NOT met"
        verdicts.append(
            f"added TTFT p50 at 8 in flight minus at 1: {rise:.2f} ms"
            f" (flat: bar ≤ {BAR_FLAT_MS:g} ms: {ok})"
        )
    print()
    for line in verdicts:
        print(line)
    lines += ["", *[f"- {line}" for line in verdicts]]
    RESULTS_FILE.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
