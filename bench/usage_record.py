"""What the crash-proof usage record costs per request, measured in-process.

Starts a private ``redis-server`` on a free port (so that its command statistics are ours
alone), then measures, for N requests:

* auth: ``QuotaStore.reserve`` as it was (no gateway id, no context) and as it is now (the
  gateway id and the serialized ``ReservationContext`` stored in the reservation), the
  process CPU per call of each and the Redis server's time per reserve script call;
* relay: ``UsageRecorder.ended`` (build and serialize a ``RelayUsage``, queue it) and its
  batched, pipelined writes (``batch`` records per round trip, as gather in 20 ms at ~1,600
  requests/s), the process CPU per record and the Redis server's time per record.

CPU is ``time.process_time()`` around the loop (this process only: the client side), Redis
time is ``INFO commandstats`` (``usec`` of EVALSHA). Run: ``.venv/bin/python
bench/usage_record.py [--calls 20000] [--batch 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import uvloop
from redis.asyncio import Redis

from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate.v1 import auth_pb2, common_pb2, events_pb2, relay_pb2
from unigate_relay.usage_record import UsageRecorder

ROUNDS = 8
PRICING = auth_pb2.Pricing(
    model_ratio=0.075,
    completion_ratio=4,
    group_ratio=1,
    cached_ratio=0.5,
    cache_write_5m_ratio=1,
    cache_write_1h_ratio=1,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A private, empty redis-server; yields its port."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed"
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[Redis]:
    redis = Redis(port=port)
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await redis.ping():
                    break
            await asyncio.sleep(0.05)
        yield redis
    finally:
        await redis.aclose()


async def evalsha_usec(redis: Redis) -> tuple[int, int]:
    """(calls, microseconds) of EVALSHA so far, server side."""
    stats = await redis.info("commandstats")
    s = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(s["calls"]), int(s["usec"])


async def reserve_loop(q: QuotaStore, n: int, prefix: str, with_record: bool) -> None:
    for i in range(n):
        context = (
            events_pb2.ReservationContext(
                request_id=f"{prefix}{i}",
                token_name="bench",
                group="default",
                model="gpt-4o-mini",
                endpoint="chat.completions",
                client_ip="10.1.2.3",
                pricing=PRICING,
            ).SerializeToString()
            if with_record
            else b""
        )
        await q.reserve(
            reservation_id=f"{prefix}{i}",
            token_id=1,
            user_id=1,
            amount=156,
            unlimited=False,
            now_ms=int(time.time() * 1000),
            gateway_id="0123456789abcdef" if with_record else "",
            context=context,
        )


async def measure(port: int, calls: int, batch: int) -> None:
    async with connected(port) as redis:
        q = QuotaStore(redis, Namespace("bench"))
        await q.load_balances(token_id=1, token_balance=10**15, user_id=1, user_balance=10**15)
        await reserve_loop(q, 500, "warm", True)  # scripts loaded, connections open

        # Interleaved rounds, the best of each: on this shared machine other work only ever adds.
        runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for round_ in range(ROUNDS):
            for label, with_record in (("before", False), ("after", True)):
                c0, u0 = await evalsha_usec(redis)
                cpu = time.process_time()
                await reserve_loop(q, calls, f"{label}{round_}-", with_record)
                cpu = time.process_time() - cpu
                c1, u1 = await evalsha_usec(redis)
                runs[label].append((cpu / calls * 1e6, (u1 - u0) / (c1 - c0)))
        print(f"auth reserve ({calls} calls, one at a time, best of {ROUNDS} rounds):")
        for label, figures in runs.items():
            cpu_us = min(f[0] for f in figures)
            redis_us = min(f[1] for f in figures)
            print(f"  {label:6}  client CPU {cpu_us:6.1f} µs/call   Redis {redis_us:5.1f} µs/call")

        # The relay: every "after" reservation gets its record, `batch` per round trip.
        recorder = UsageRecorder(q, linger=0, max_batch=batch, max_pending=calls)
        usage = common_pb2.Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12)
        requests = [
            relay_pb2.RelayRequest(
                request_id=f"after0-{i}",
                reservation_id=f"after0-{i}",
                channel_id=3,
                upstream_model="gpt-4o-mini",
                user_id=1,
            )
            for i in range(calls)
        ]
        c0, u0 = await evalsha_usec(redis)
        queue_cpu = 0.0
        cpu = time.process_time()
        for start in range(0, calls, batch):
            t = time.process_time()
            for r in requests[start : start + batch]:
                recorder.ended(r, usage, status=200, first_token_ms=120, upstream_ms=340)
            queue_cpu += time.process_time() - t
            await recorder.flush()
        cpu = time.process_time() - cpu
        c1, u1 = await evalsha_usec(redis)
        assert recorder.written == calls
        written = await redis.hget(Namespace("bench").user_key(1, "rsv", "after0-0"), "ru")
        assert written, "no record was written"
        print(f"relay usage records ({calls}, {batch} per pipelined round trip):")
        print(
            f"  client CPU {cpu / calls * 1e6:6.1f} µs/record"
            f" (of which building and queueing {queue_cpu / calls * 1e6:.1f})"
            f"   Redis {(u1 - u0) / (c1 - c0):5.1f} µs/record"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    with redis_server() as port:
        uvloop.run(measure(port, args.calls, args.batch))


if __name__ == "__main__":
    main()
