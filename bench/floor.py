"""The floor under issue 22's bars: the fixed architecture's path with none of unigate's work.

What it runs: nginx answering a fixed chat completion (the same "direct upstream" as
``bench/run.py``), and in front of it two Python processes built from the same parts as the
gateway and the relay, doing only what the architecture makes every request do:

- an **edge**: uvicorn with httptools and uvloop (the gateway's choices) and a bare ASGI
  callable, no framework: read the body, one call over the relay's multiplexed ``CallMany``
  lane (``grpc_mux.MuxClient``, batches, mutual TLS, the caller check on the server), write
  the answer;
- a **hop**: a ``grpc.aio`` server (``grpcutil.new_server``, mutual TLS, ``rpc_acl``'s caller
  check) serving ``CallMany`` with ``grpc_mux.MuxServer``, whose handler POSTs the body to nginx
  with aiohttp (the relay's client) and returns the bytes.

No key check, no quota reservation in Redis, no usage event, no ledger, no tracing, no
metrics. Whatever the full gateway path adds is on top of this.

``--binding`` adds the one step of the full path that the issue's guarantees put between the
request and the provider call for a hot key: the edge binds a spare reservation in Redis
(``QuotaStore.bind_spares``, on spares booked with ``QuotaStore.issue_spares`` as auth books
them) before the hop, and books the next batch in the background, off the request's path.
That floor is what no change keeping the binding on the request's path can go under.

wrk drives both exactly as ``bench/run.py`` drives the gateway; CPU per request is each
process's, from ``/proc``.

    .venv/bin/python bench/floor.py [--duration 10] [--connections 1,32] [--runs 3] [--binding]

It prints, per run, direct and floor figures and the floor set against issue 22's bars: a bar
the floor itself misses cannot be met by the full path on this machine without changing the
architecture (a hop fewer) or the language of a hop.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run

CHAT_PATH = bench_run.CHAT_PATH
FLOOR_LANES = 2  # as the gateway's default GRPC_MUX_LANES


# ---- the two processes -------------------------------------------------------------------------


def _serve_hop(port: int, upstream: str, tls_dir: Path) -> None:
    import aiohttp
    import uvloop

    from unigate.certs import TlsFiles
    from unigate.grpc_mux import RELAY_CALL, RELAY_CALL_WIRE, MuxServer
    from unigate.grpcutil import listen, new_server
    from unigate.v1 import relay_pb2, relay_pb2_grpc

    class Hop(relay_pb2_grpc.RelayServiceServicer):
        def __init__(self, http: aiohttp.ClientSession) -> None:
            self._http = http
            self._many: MuxServer[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxServer(
                self._one,
                lambda exc: relay_pb2.RelayResult(http_status=502),
                lambda: relay_pb2.RelayResult(call_id=0),
                RELAY_CALL_WIRE,
                method=RELAY_CALL,
            )

        async def _one(self, request: relay_pb2.RelayRequest) -> relay_pb2.RelayResult:
            async with self._http.post(
                upstream + CHAT_PATH,
                data=request.body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                body = await resp.read()
                return relay_pb2.RelayResult(
                    http_status=resp.status, content_type="application/json", body=body
                )

        async def CallMany(self, request_iterator: Any, context: Any) -> Any:
            async for results in self._many.serve(request_iterator):
                yield results

    async def main() -> None:
        tls = TlsFiles.in_dir(tls_dir, "relay")
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        server = new_server(tls)
        relay_pb2_grpc.add_RelayServiceServicer_to_server(Hop(http), server)
        listen(server, f"127.0.0.1:{port}", tls)
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


# Spares the --binding edge books at a time (the gateway's pools hold up to 64).
_SPARE_BATCH = 64


def _serve_edge(port: int, hop_port: int, tls_dir: Path, redis_url: str, prefix: str) -> None:
    import asyncio
    import collections
    import itertools

    import uvicorn

    from unigate.certs import TlsFiles
    from unigate.grpc_mux import RELAY_CALL, RELAY_CALL_WIRE, MuxClient
    from unigate.grpcutil import client_channel
    from unigate.namespace import Namespace
    from unigate.quota import QuotaStore
    from unigate.redisconn import connect_redis
    from unigate.v1 import relay_pb2, relay_pb2_grpc

    state: dict[str, MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult]] = {}
    quota = QuotaStore(connect_redis(redis_url), Namespace(prefix)) if redis_url else None
    stock: collections.deque[str] = collections.deque()
    ids = itertools.count()
    restocking: set[asyncio.Task[None]] = set()
    gateway_id, user_id = "floor-edge", 1
    # About what a real binding carries: the request's reservation context.
    context = b"x" * 200

    async def restock() -> None:
        """Spares booked as auth books them for a hot key (an unlimited one: no balance to
        read), a batch at a time, valid long enough for the whole run."""
        assert quota is not None
        spare_ids = [f"spare-{next(ids)}" for _ in range(_SPARE_BATCH)]
        stock.extend(
            await quota.issue_spares(
                spare_ids=spare_ids,
                token_id=1,
                user_id=user_id,
                amount=100,
                unlimited=True,
                gateway_id=gateway_id,
                context=context,
                valid_ms=3_600_000,
                share=1,
            )
        )

    async def bind() -> None:
        """Bind one spare to this request, as the gateway's ``SparePools`` does (one script
        call per request here; the gateway joins the bindings of one event-loop turn)."""
        assert quota is not None
        if not stock:
            await restock()
        rid = stock.popleft()
        arrived = int(time.time() * 1000)
        bound = await quota.bind_spares(user_id, gateway_id, [(rid, context, arrived)])
        if bound != [True]:
            raise RuntimeError(f"spare {rid} was not bindable")

    def restock_soon() -> None:
        """The next batch, off the request's path, as auth's background refill is."""
        if len(stock) < _SPARE_BATCH and not restocking:
            task = asyncio.ensure_future(restock())
            restocking.add(task)
            task.add_done_callback(restocking.discard)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    channel = client_channel(
                        f"127.0.0.1:{hop_port}", TlsFiles.in_dir(tls_dir, "gateway"), "relay"
                    )
                    stub = relay_pb2_grpc.RelayServiceStub(channel)
                    if quota is not None:
                        # The user's balance as auth caches it from Postgres (a key of
                        # an unlimited token draws on its user's): ample for the run.
                        await quota.begin_load(token_id=1, user_id=user_id)
                        await quota.load_balances(
                            token_id=1, token_balance=None, user_id=user_id, user_balance=10**15
                        )
                        for _ in range(2):
                            await restock()
                    state["many"] = MuxClient(
                        stub.CallMany, RELAY_CALL_WIRE, method=RELAY_CALL, lanes=FLOOR_LANES
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if quota is not None:
            await bind()
        result = await state["many"].call(relay_pb2.RelayRequest(body=body), 30.0)
        await send(
            {
                "type": "http.response.start",
                "status": result.http_status,
                "headers": [(b"content-type", result.content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": result.body})
        if quota is not None:
            restock_soon()

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


# ---- the harness ------------------------------------------------------------------------------


def _start(role: str, *args: str, workdir: Path) -> subprocess.Popen[bytes]:
    log = (workdir / f"{role}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, __file__, role, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise bench_run.BenchError(f"{p.args[2]} exited with {p.returncode}")
            try:
                if client.post(url, json=bench_run.CHAT_BODY).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise bench_run.BenchError("the floor's edge did not answer in time")
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(args: argparse.Namespace) -> int:
    from unigate.certs import write_certificates
    from unigate_cli.devstack import free_port

    with tempfile.TemporaryDirectory(prefix="unigate-floor-") as tmp:
        workdir = Path(tmp)
        tls_dir = workdir / "certs"
        write_certificates(tls_dir, identities=("gateway", "relay"), hostnames=["127.0.0.1"])
        nginx = bench_run.Nginx(workdir)
        nginx.start()
        hop_port, edge_port = free_port(), free_port()
        hop = _start("hop", str(hop_port), nginx.url, str(tls_dir), workdir=workdir)
        redis_url = args.redis_url if args.binding else ""
        prefix = f"unigate-floor-{secrets.token_hex(4)}"
        edge = _start(
            "edge", str(edge_port), str(hop_port), str(tls_dir), redis_url, prefix, workdir=workdir
        )
        try:
            url = f"http://127.0.0.1:{edge_port}{CHAT_PATH}"
            _wait_ready(url, [hop, edge])
            pids = {"edge": edge.pid, "hop": hop.pid}
            for name, pid in (("nginx", w) for w in nginx.worker_pids()):
                pids[f"{name}-{pid}"] = pid
            print(f"load average before: {bench_run.load_average()}", flush=True)
            if redis_url:
                print("the floor with a spare bound in Redis per request (--binding)", flush=True)
            warm = max(args.connection_list)
            bench_run.run_wrk("floor", url, "", warm, args.threads, bench_run.WARMUP_SECONDS)
            rows = []
            for run in range(1, args.runs + 1):
                for c in args.connection_list:
                    direct = bench_run.run_wrk(
                        "direct", nginx.url + CHAT_PATH, "", c, args.threads, args.duration
                    )
                    floor = bench_run.run_wrk(
                        "floor", url, "", c, args.threads, args.duration, pids
                    )
                    if direct.errors or floor.errors:
                        raise bench_run.BenchError(
                            f"errors: direct {direct.errors}, floor {floor.errors}"
                        )
                    cpu = floor.cpu_ms_per_request
                    edge_cpu, hop_cpu = cpu.get("edge", 0.0), cpu.get("hop", 0.0)
                    rows.append((run, c, direct, floor, edge_cpu, hop_cpu))
                    print(
                        f"run {run} c{c}: direct p50 {direct.p50_ms:.2f} ms; floor"
                        f" {floor.rps:,.0f} req/s, p50 {floor.p50_ms:.2f}, p99"
                        f" {floor.p99_ms:.2f} ms, added p50"
                        f" {floor.p50_ms - direct.p50_ms:.2f} ms, CPU ms/request edge"
                        f" {edge_cpu:.2f} hop {hop_cpu:.2f}",
                        flush=True,
                    )
        finally:
            for p in (edge, hop):
                _stop(p)
            nginx.stop()
            if redis_url:
                bench_run.delete_redis_keys(redis_url, prefix)
    print()
    print(
        "| run | connections | floor req/s | floor p50 ms | floor p99 ms | added p50 ms"
        " | added p99 ms | CPU ms/request edge + hop |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run, c, direct, floor, edge_cpu, hop_cpu in rows:
        print(
            f"| {run} | {c} | {floor.rps:,.0f} | {floor.p50_ms:.2f} | {floor.p99_ms:.2f}"
            f" | {floor.p50_ms - direct.p50_ms:.2f} | {floor.p99_ms - direct.p99_ms:.2f}"
            f" | {edge_cpu:.2f} + {hop_cpu:.2f} |"
        )
    print()
    _bars(rows)
    return 0


def _bars(rows: list[tuple[int, int, Any, Any, float, float]]) -> None:
    """The floor against issue 22's bars (best run of each)."""
    # p99: the floor's whole p99, upstream included (a difference of two p99s can be negative
    # when the direct run had the spike), so a floor "under the bar" is under it for sure.
    ones = [(f.p50_ms - d.p50_ms, f.p99_ms) for _, c, d, f, _, _ in rows if c == 1]
    many = [f for _, c, _, f, _, _ in rows if c == bench_run.BAR_RPS_CONNECTIONS]
    if ones:
        p50 = min(a for a, _ in ones)
        p99 = min(b for _, b in ones)
        for what, value, bar in (
            ("added p50 at 1 connection", p50, bench_run.BAR_ADDED_P50_MS),
            ("p99 at 1 connection (whole)", p99, bench_run.BAR_ADDED_P99_MS),
        ):
            verdict = "under the bar" if value <= bar else "ABOVE the bar"
            print(f"floor's best {what}: {value:.2f} ms (bar ≤ {bar:g} ms: {verdict})")
    if many:
        rps = max(f.rps for f in many)
        verdict = "over the bar" if rps >= bench_run.BAR_RPS else "BELOW the bar"
        print(
            f"floor's best req/s at {bench_run.BAR_RPS_CONNECTIONS} connections: {rps:,.0f}"
            f" (bar ≥ {bench_run.BAR_RPS:,.0f}: {verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "hop":
        _serve_hop(int(argv[1]), argv[2], Path(argv[3]))
        return 0
    if argv and argv[0] == "edge":
        _serve_edge(int(argv[1]), int(argv[2]), Path(argv[3]), argv[4], argv[5])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--connections", default="1,32", help="concurrencies (default 1,32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads, at most (default 2)")
    p.add_argument("--runs", type=int, default=3, help="rounds of every run (default 3)")
    p.add_argument(
        "--binding",
        action="store_true",
        help="the edge also binds a spare reservation in Redis before the hop (the full"
        " path's one step between request and provider call for a hot key)",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = p.parse_args(argv)
    args.connection_list = [int(c) for c in args.connections.split(",") if c.strip()]
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
