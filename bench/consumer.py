"""Benchmark of the billing consumer alone: usage events applied per second by batch size.

For each batch size (messages per fetch: 1, 100, 1000 by default), in a fresh namespace and a
fresh database: K usage events are published into the namespace's usage stream, one event per
``UsageBatch`` message (the gateway's packing when idle, the consumer's worst case), each with
its own request id and an open quota reservation in Redis, for a real key and user. Then the
billing consumer (``UsageConsumer`` + ``Ledger``, in this process, as ``unigate-billing`` runs
them) drains the stream; the time from its start to the last event applied gives events/s.
The ledger is checked afterwards (K rows, the key charged their sum, no reservation left).

`.venv/bin/python bench/consumer.py [--events 10000] [--batch-sizes 1,100,1000]`
(or `make bench-consumer`). Needs Postgres, Redis and NATS JetStream as for the tests;
everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    MODEL,
    delete_redis_keys,
    delete_stream,
    drop_database,
    prepare_database,
    with_database,
)

from unigate import bus
from unigate.db import create_pool
from unigate.namespace import USAGE_SCHEMA_VERSION, Namespace
from unigate.quota import QuotaStore
from unigate.redisconn import connect_redis
from unigate.v1 import auth_pb2, common_pb2, events_pb2
from unigate_billing.consumer import UsageConsumer
from unigate_billing.ledger import Ledger

ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")
# What a small chat completion reserves and then costs (quota units).
RESERVED, CHARGED = 150, 12


@dataclass(frozen=True)
class Result:
    batch_size: int
    events: int
    seconds: float
    cpu_seconds: float

    def row(self) -> str:
        return (
            f"| {self.batch_size} | {self.events:,} | {self.seconds:.2f} |"
            f" {self.events / self.seconds:,.0f} | {self.cpu_seconds / self.events * 1000:.3f} |"
        )


def event(request_id: str, token_id: int, channel_id: int) -> events_pb2.UsageEvent:
    return events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=request_id,
        reservation_id=request_id,
        reserved_quota=RESERVED,
        user_id=1,
        token_id=token_id,
        token_name="bench",
        group="default",
        channel_id=channel_id,
        model=MODEL,
        upstream_model=MODEL,
        endpoint="chat.completions",
        usage=common_pb2.Usage(prompt_tokens=9, completion_tokens=12, total_tokens=21),
        pricing=auth_pb2.Pricing(model_ratio=0.075, completion_ratio=4.0, group_ratio=1.0),
        quota=CHARGED,
        status_code=200,
        latency_ms=120,
        client_ip="127.0.0.1",
        channels_tried=[channel_id],
        created_at_ms=int(time.time() * 1000),
    )


async def measure(batch_size: int, events: int) -> Result:
    """In a fresh database of its own, dropped afterwards."""
    db_name = f"unigate_bench_{secrets.token_hex(4)}"
    dsn = with_database(ADMIN_DSN, db_name)
    try:
        return await measure_in(dsn, batch_size, events)
    finally:
        await drop_database(ADMIN_DSN, db_name)


async def measure_in(dsn: str, batch_size: int, events: int) -> Result:
    """In the database at ``dsn`` (migrated here if it is not; a key and a channel of its own
    are added), in a namespace of its own, removed afterwards. ``bench/ledger.py`` runs it on
    a database holding a long history."""
    suffix = secrets.token_hex(4)
    name = f"bench{suffix}"
    ns = Namespace(name)
    try:
        fixture = await prepare_database(dsn, secrets.token_urlsafe(32), "http://127.0.0.1:9")
        # The same pools as unigate-billing.
        pool = await create_pool(dsn, min_size=2, max_size=8)
        redis = connect_redis(REDIS_URL, max_connections=16)
        nc = await bus.connect(NATS_URL, "bench-consumer")
        try:
            js = nc.jetstream()
            await bus.ensure_usage_stream(js, ns)
            quota = QuotaStore(redis, ns)
            ids = [f"{suffix}-{i:08d}" for i in range(events)]
            await quota.load_balances(
                token_id=fixture.token_id, token_balance=None, user_id=1, user_balance=10**12
            )
            now_ms = int(time.time() * 1000)
            for chunk in range(0, events, 500):
                # Open reservations, as auth leaves them, so that settling does its real work.
                await asyncio.gather(
                    *(
                        quota.reserve(
                            reservation_id=rid,
                            token_id=fixture.token_id,
                            user_id=1,
                            amount=RESERVED,
                            unlimited=True,
                            now_ms=now_ms,
                        )
                        for rid in ids[chunk : chunk + 500]
                    )
                )
                await asyncio.gather(
                    *(
                        js.publish(
                            ns.usage_subject,
                            events_pb2.UsageBatch(
                                events=[event(rid, fixture.token_id, fixture.channel_id)]
                            ).SerializeToString(),
                            headers={"Nats-Msg-Id": rid},
                        )
                        for rid in ids[chunk : chunk + 500]
                    )
                )

            consumer = UsageConsumer(
                js, ns, Ledger(pool), quota, batch_size=batch_size, ack_wait=30.0
            )
            cpu, started = time.process_time(), time.perf_counter()
            running = asyncio.create_task(consumer.run())
            while consumer.applied < events:
                if running.done():
                    running.result()  # raises what stopped it
                    raise RuntimeError("the consumer stopped early")
                await asyncio.sleep(0.005)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            consumer.stop()
            await asyncio.wait_for(running, 10)

            rows, charged = await pool.fetchrow(
                "SELECT count(*), coalesce(sum(quota), 0) FROM logs WHERE token_id = $1",
                fixture.token_id,
            )
            used = await pool.fetchval(
                "SELECT used_quota FROM tokens WHERE id = $1", fixture.token_id
            )
            open_reservations = (await quota.open_reservations())[0]
            if (rows, charged, used, open_reservations) != (
                events,
                events * CHARGED,
                events * CHARGED,
                0,
            ):
                raise RuntimeError(
                    f"ledger wrong: {rows} rows, {charged} charged, {used} used,"
                    f" {open_reservations} reservations open"
                )
        finally:
            await nc.close()
            await redis.aclose()
            await pool.close()
    finally:
        delete_redis_keys(REDIS_URL, name)
        await delete_stream(NATS_URL, name)
    return Result(batch_size, events, seconds, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-sizes", default="1,100,1000", help="messages per fetch")
    args = parser.parse_args()
    # The consumer's own errors are worth seeing; NATS saying goodbye at each close is not.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("unigate.bus").setLevel(logging.ERROR)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    print(
        f"billing consumer: {args.events:,} events, one per message; nproc {os.cpu_count()},"
        f" python {platform.python_version()}; Postgres, Redis and NATS on this machine"
    )
    print("| messages per fetch | events | seconds | events/s | consumer CPU ms/event |")
    print("|---:|---:|---:|---:|---:|")
    for size in sizes:
        print(uvloop.run(measure(size, args.events)).row(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
