"""Load benchmark of the full gateway path against a direct upstream.

An nginx answering a fixed chat completion is the "direct upstream". A whole stack (auth,
relay, billing, gateway) is started on free ports with its own database, namespace and temp
dir, with one channel pointing to that nginx and one unlimited key. wrk then drives
``POST /v1/chat/completions`` at each concurrency against nginx directly and through the
gateway; the difference is what the gateway path adds (key check, quota reservation, relay
hop, usage event). Afterwards the ledger must hold one consume row per 2xx the gateway served.
Where installed (bench/compare/setup.sh), LiteLLM's proxy and Portkey's gateway run in front of
the same nginx, for scale. ``--rss-requests N`` runs the memory bar instead (bench/rss.py).

    .venv/bin/python bench/run.py [--duration 10] [--connections 1,32] [--threads 2]

See bench/README.md. Exits 1 on any non-2xx/socket error or a ledger mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import nats
import nats.js.errors
import redis

# `make bench` runs this file as a script: the repository root, for the fixture writes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rss
from other_gateways import NOT_INSTALLED, GatewayError, OtherGateway, start_litellm, start_portkey
from otlp_sink import PRODUCTION_SAMPLE_RATIO, Sink

from tests import admin_writes
from unigate.db import create_pool
from unigate.db.migrate import ensure_database, migrate
from unigate_cli.devstack import Stack, StackConfig, StackPorts, free_port

BENCH_DIR = Path(__file__).resolve().parent
NGINX_TEMPLATE = BENCH_DIR / "nginx.conf.tmpl"
WRK_SCRIPT = BENCH_DIR / "chat.lua"
RESULTS_FILE = BENCH_DIR / "results.md"
RSS_RESULTS_FILE = BENCH_DIR / "rss-results.md"
OTHER_GATEWAYS = ("litellm", "portkey")
MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"
CHAT_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]}
WARMUP_SECONDS = 2
LOG_TYPE_CONSUME = 2  # logs.type: 1 top-up, 2 consume, 3 manage, 4 system, 5 test
# The bars (issue 22; bench/README.md), in the production configuration.
BAR_ADDED_P50_MS = 1.0
BAR_ADDED_P99_MS = 3.0
BAR_RPS = 2000.0
BAR_RPS_CONNECTIONS = 32
BAR_RPS_P99_MS = 50.0

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(RuntimeError):
    """A failure of the benchmark itself (setup, wrk output, ledger)."""


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrkResult:
    target: str
    connections: int
    threads: int
    requests: int  # wrk's "N requests in ..." line: responses completed within the run
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int  # counted by chat.lua
    socket_errors: int  # connect + read + write + timeout
    output: str
    # CPU ms each local process (services, nginx) spent per completed request in this run.
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    # The same for the backing stores and wrk (BACKING: every process of that name on the
    # machine, so anything else they serve meanwhile counts too), and for the whole machine.
    backing_ms_per_request: dict[str, float] = field(default_factory=dict)
    machine_ms_per_request: float = 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    @property
    def ok(self) -> int:
        """2xx responses wrk saw."""
        return self.requests - self.non2xx


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def _search(pattern: str, text: str, what: str) -> re.Match[str]:
    m = re.search(pattern, text, re.MULTILINE)
    if m is None:
        raise BenchError(f"wrk output has no {what}:\n{text}")
    return m


def parse_wrk(target: str, connections: int, threads: int, output: str) -> WrkResult:
    requests = int(_search(r"^\s*(\d+) requests in ", output, "requests line").group(1))
    rps = float(_search(r"^Requests/sec:\s+([\d.]+)", output, "Requests/sec").group(1))
    p50 = _search(r"^\s+50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, "50% latency")
    p99 = _search(r"^\s+99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, "99% latency")
    bench = _search(r"^BENCH responses=(\d+) non2xx=(\d+)", output, "BENCH line (chat.lua)")
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    return WrkResult(
        target=target,
        connections=connections,
        threads=threads,
        requests=requests,
        rps=rps,
        p50_ms=to_ms(*p50.groups()),
        p99_ms=to_ms(*p99.groups()),
        non2xx=int(bench.group(2)),
        socket_errors=socket_errors,
        output=output,
    )


def run_wrk(
    target: str,
    url: str,
    key: str,
    connections: int,
    threads: int,
    duration: int,
    pids: dict[str, int] | None = None,
    profile_dir: Path | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    threads = max(1, min(connections, threads))
    cmd = [
        "wrk",
        f"-c{connections}",
        f"-t{threads}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    # The key goes through the environment (not argv, which `ps` shows); chat.lua reads it.
    env = dict(os.environ, BENCH_API_KEY=key, BENCH_MODEL=MODEL)
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())
    spies = start_profilers(profile_dir, f"c{connections}", duration, pids or {})
    before = cpu_snapshot(pids or {})
    backing_before = backing_snapshot() if pids else {}
    machine_before = machine_cpu_seconds()
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    machine_after = machine_cpu_seconds()
    backing_after = backing_snapshot() if pids else {}
    after = cpu_snapshot(pids or {})
    for spy in spies:
        spy.wait(30)
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    result = parse_wrk(target, connections, threads, proc.stdout)
    n = max(result.requests, 1)
    for name in before.keys() & after.keys():
        result.cpu_ms_per_request[name] = (after[name] - before[name]) * 1000.0 / n
    for name in backing_before.keys() & backing_after.keys():
        result.backing_ms_per_request[name] = (
            (backing_after[name] - backing_before[name]) * 1000.0 / n
        )
    return replace(result, machine_ms_per_request=(machine_after - machine_before) * 1000.0 / n)


PROFILED = ("gateway", "auth", "relay", "billing")
SINK = "otlp-sink"


def start_profilers(
    profile_dir: Path | None, tag: str, duration: int, pids: dict[str, int]
) -> list[subprocess.Popen[bytes]]:
    """py-spy (if asked for) on each service during a run: collapsed stacks per process,
    ``<profile_dir>/<service>-<tag>.txt``. Sampling costs CPU of its own (on the same cores),
    so a profiled run's figures are not the bench's figures."""
    if profile_dir is None:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    profile_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PROFILED:
        if name not in pids:
            continue
        cmd = [spy, "record", "--nonblocking", "-r", "200", "-f", "raw", "-d", str(duration)]
        cmd += ["-o", str(profile_dir / f"{name}-{tag}.txt"), "-p", str(pids[name])]
        out.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


# Processes by name (/proc/<pid>/comm) whose CPU the gateway runs also report: the backing
# stores every request uses, and the load generator.
BACKING = {"redis": "redis-server", "nats": "nats-server", "postgres": "postgres", "wrk": "wrk"}


def backing_snapshot() -> dict[str, float]:
    """CPU seconds so far of every process named in BACKING, summed by BACKING's key; wrk's
    (a child that has exited by the second snapshot) as this process's reaped children's."""
    names = {comm: key for key, comm in BACKING.items() if key != "wrk"}
    out = dict.fromkeys(BACKING, 0.0)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["wrk"] = children.ru_utime + children.ru_stime
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        key = names.get(comm)
        if key is not None:
            t = cpu_seconds(int(proc.name))
            out[key] += t or 0.0
    return out


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core; /proc/stat), or 0."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
    return busy / _CLK_TCK


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        t = cpu_seconds(pid)
        if t is not None:
            out[name] = t
    return out


# --------------------------------------------------------------------------------------------
# nginx, the direct upstream
# --------------------------------------------------------------------------------------------


class Nginx:
    def __init__(self, workdir: Path) -> None:
        self.prefix = workdir / "nginx"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            NGINX_TEMPLATE.read_text()
            .replace("@PREFIX@", str(self.prefix))
            .replace("@PORT@", str(self.port))
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        log = self.prefix / "nginx-error.log"
        # -e: the error log used before the config is read (else the compiled-in path).
        cmd = [nginx, "-p", str(self.prefix), "-c", str(conf), "-e", str(log)]
        check = subprocess.run([*cmd, "-t", "-q"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise BenchError(f"nginx config test failed:\n{check.stderr}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise BenchError(f"nginx exited with {self.proc.returncode}\n{tail}")
                try:
                    if client.post(self.url + CHAT_PATH, json=CHAT_BODY).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError("nginx did not answer in time")
                time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        pid = self.proc.pid
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # the master stops its workers
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------------------------
# Database, Redis, NATS
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixture:
    channel_id: int
    token_id: int
    key: str


def with_database(admin_dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))


async def prepare_database(dsn: str, secret_key: str, upstream_url: str) -> Fixture:
    await ensure_database(dsn)
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        channel_id = await admin_writes.create_channel(
            pool,
            secret_key=secret_key,
            type=1,
            name="bench-nginx",
            key="sk-bench-" + secrets.token_hex(16),  # nginx checks nothing
            models=MODEL,
            base_url=upstream_url,
        )
        token = await admin_writes.create_token(pool, user_id=1, name="bench", unlimited_quota=True)
    finally:
        await pool.close()
    return Fixture(channel_id=channel_id, token_id=token.id, key=token.key)


async def count_ledger_rows(dsn: str, token_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM logs WHERE token_id = $1 AND type = $2",
            token_id,
            LOG_TYPE_CONSUME,
        )
    finally:
        await conn.close()
    return int(n)


async def wait_for_ledger(
    dsn: str, token_id: int, expected: int, wait_seconds: float, settle: float = 2.0
) -> int:
    """Poll the ledger until it holds at least ``expected`` rows and stops growing for
    ``settle`` seconds (requests in flight at the end of a run land too), or ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    last, since = -1, time.monotonic()
    while True:
        n = await count_ledger_rows(dsn, token_id)
        now = time.monotonic()
        if n != last:
            last, since = n, now
        elif n >= expected and now - since >= settle:
            return n
        if now > deadline:
            return n
        await asyncio.sleep(0.25)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


def delete_redis_keys(url: str, namespace: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        return len(keys)
    finally:
        client.close()


async def delete_stream(url: str, namespace: str) -> None:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(f"{namespace.upper()}_USAGE")
    finally:
        await nc.close()


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    direct: list[WrkResult] = field(default_factory=list)
    gateway: list[WrkResult] = field(default_factory=list)
    # The other gateways' runs (bench/other_gateways.py), same nginx, same wrk, same run.
    others: list[WrkResult] = field(default_factory=list)

    def table(self) -> str:
        lines = [
            "| target | connections | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms"
            " | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        direct = {r.connections: r for r in self.direct}
        order = {"direct": 0, "gateway": 1}
        for r in sorted(
            self.direct + self.gateway + self.others,
            key=lambda r: (r.connections, order.get(r.target, 2), r.target),
        ):
            added50 = added99 = "-"
            base = direct.get(r.connections)
            if r.target != "direct" and base is not None:
                added50 = f"{r.p50_ms - base.p50_ms:.2f}"
                added99 = f"{r.p99_ms - base.p99_ms:.2f}"
            lines.append(
                f"| {r.target} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} |"
                f" {r.p99_ms:.2f} | {added50} | {added99} | {r.errors} |"
            )
        return "\n".join(lines)

    def cpu_table(self) -> str:
        """CPU ms per request of each process during the gateway runs."""
        names = ["gateway", "auth", "relay", "billing", "nginx"]
        runs = [r for r in self.gateway if r.cpu_ms_per_request]
        if not runs:
            return ""
        # The trace sink stands for a collector elsewhere: shown, not in the path's total.
        sink = any(SINK in r.cpu_ms_per_request for r in runs)
        backing = list(BACKING)
        lines = [
            "| connections | "
            + " | ".join(names)
            + " | total |"
            + (" otlp sink (not in total) |" if sink else "")
            + "".join(f" {b} |" for b in backing)
            + " whole machine |",
            "|---:|" + "---:|" * (len(names) + 1 + sink + len(backing) + 1),
        ]
        for r in sorted(runs, key=lambda r: r.connections):
            cpu = r.cpu_ms_per_request
            cells = [f"{cpu.get(n, 0.0):.2f}" for n in names]
            total = sum(v for k, v in cpu.items() if k != SINK)
            lines.append(
                f"| {r.connections} | "
                + " | ".join(cells)
                + f" | {total:.2f} |"
                + (f" {cpu.get(SINK, 0.0):.2f} |" if sink else "")
                + "".join(f" {r.backing_ms_per_request.get(b, 0.0):.2f} |" for b in backing)
                + f" {r.machine_ms_per_request:.2f} |"
            )
        return "\n".join(lines)

    def others_cpu_table(self) -> str:
        """CPU ms per request of each other gateway's process (and nginx) during its runs."""
        runs = [r for r in self.others if r.cpu_ms_per_request]
        if not runs:
            return ""
        lines = [
            "| gateway | connections | its process | nginx |",
            "|---|---:|---:|---:|",
        ]
        for r in sorted(runs, key=lambda r: (r.target, r.connections)):
            cpu = r.cpu_ms_per_request
            lines.append(
                f"| {r.target} | {r.connections} | {cpu.get(r.target, 0.0):.2f} |"
                f" {cpu.get('nginx', 0.0):.2f} |"
            )
        return "\n".join(lines)

    def bar(self) -> list[str]:
        out = []
        direct = {r.connections: r for r in self.direct}
        gw = {r.connections: r for r in self.gateway}

        def verdict(ok: bool) -> str:
            return "met" if ok else "NOT met"

        if 1 in gw and 1 in direct:
            added50 = gw[1].p50_ms - direct[1].p50_ms
            added99 = gw[1].p99_ms - direct[1].p99_ms
            out.append(
                f"added p50 at 1 connection: {added50:.2f} ms"
                f" (bar ≤ {BAR_ADDED_P50_MS:g} ms: {verdict(added50 <= BAR_ADDED_P50_MS)})"
            )
            out.append(
                f"added p99 at 1 connection: {added99:.2f} ms"
                f" (bar ≤ {BAR_ADDED_P99_MS:g} ms: {verdict(added99 <= BAR_ADDED_P99_MS)})"
            )
        if BAR_RPS_CONNECTIONS in gw:
            r = gw[BAR_RPS_CONNECTIONS]
            out.append(
                f"gateway req/s at {BAR_RPS_CONNECTIONS} connections: {r.rps:,.0f}"
                f" (bar ≥ {BAR_RPS:,.0f}: {verdict(r.rps >= BAR_RPS)})"
            )
            out.append(
                f"gateway p99 at {BAR_RPS_CONNECTIONS} connections: {r.p99_ms:.2f} ms"
                f" (bar ≤ {BAR_RPS_P99_MS:g} ms: {verdict(r.p99_ms <= BAR_RPS_P99_MS)})"
            )
        return out


def machine_info() -> list[str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    load = load_average()
    return [
        f"- nproc: {os.cpu_count()}" + (f" ({cpu})" if cpu else ""),
        f"- load average (1/5/15 min) at the start: {load}",
        f"- python: {platform.python_version()} ({sys.executable})",
        f"- os: {platform.platform()}",
        f"- wrk: {(wrk.stdout or wrk.stderr).splitlines()[0].strip() if (wrk.stdout or wrk.stderr) else '?'}",  # noqa: E501
        f"- nginx: {nginx.stderr.strip() or '?'}",
    ]


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def write_results(
    args: argparse.Namespace,
    report: Report,
    ledger_line: str,
    status: str,
    machine: list[str],
    others: list[str],
) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    others_cpu = report.others_cpu_table()
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `bench/run.py` (see `bench/README.md`): wrk against an nginx answering a"
            " fixed chat completion (direct), through the full gateway path to that nginx"
            " (gateway) and, for scale, through LiteLLM's proxy and Portkey's gateway to the same"
            " nginx where installed (bench/compare/setup.sh), same run; added = target - direct"
            " at the same concurrency.",
            "",
            f"## {now}",
            "",
            *machine,
            f"- load average (1/5/15 min) at the end: {load_average()}",
            f"- run: `bench/run.py --duration {args.duration}"
            f" --connections {args.connections} --threads {args.threads}"
            f" --internal-tls {args.internal_tls} --tracing {args.tracing}"
            + (f" --trace-sample {args.trace_sample:g}" if args.tracing == "on" else "")
            + f" --compare {args.compare}"
            + "` (all services and wrk on the same machine)",
            f"- configuration: {configuration(args)}",
            "",
            report.table(),
            "",
            "CPU ms per request, by process, during the gateway runs"
            " (from /proc; wrk's own CPU not included):",
            "",
            report.cpu_table(),
            "",
            *(
                [
                    "Other gateways (one process each, as shipped; not in the bars):",
                    "",
                    *[f"- {line}" for line in others],
                    "",
                ]
                if others
                else []
            ),
            *(
                [
                    "CPU ms per request of the other gateways' process (and nginx) during their"
                    " runs:",
                    "",
                    others_cpu,
                    "",
                ]
                if others_cpu
                else []
            ),
            *[f"- {line}" for line in report.bar()],
            f"- {ledger_line}",
            f"- status: {status}",
            "",
        ]
    )
    write_keeping_history(RESULTS_FILE, text)


KEEP_RUNS = 10


def write_keeping_history(path: Path, text: str, keep: int = KEEP_RUNS) -> None:
    """Write ``text`` (a title, an introduction, then one ``## <date>`` section) with the
    earlier runs' ``## `` sections of the file below it, newest first, at most ``keep`` runs
    in all: figures measured on a quiet machine stay next to those of a loaded one."""
    earlier: list[str] = []
    if path.exists():
        old = path.read_text()
        start = old.find("\n## ")
        if start >= 0:
            earlier = ["## " + part for part in old[start + 4 :].split("\n## ")]
    sections = [text.rstrip("\n") + "\n"] + [e.rstrip("\n") + "\n" for e in earlier[: keep - 1]]
    path.write_text("\n".join(sections))


def configuration(args: argparse.Namespace) -> str:
    production = args.internal_tls == "on" and args.tracing == "on"
    tracing = (
        f"tracing on (OTLP to a local sink, {args.trace_sample:.0%} of requests sampled)"
        if args.tracing == "on"
        else "tracing off"
    )
    return (
        "production" if production else "NOT the production configuration"
    ) + f": internal mTLS {args.internal_tls}, metrics on, {tracing}"


def scan_logs(log_dir: Path) -> list[str]:
    found = []
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"level":"error"' in line or '"level":"warning"' in line or "Traceback" in line:
                found.append(f"{path.name}: {line}")
    return found


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument(
        "--connections", default="1,32", help="comma-separated concurrencies (default 1,32)"
    )
    p.add_argument("--threads", type=int, default=2, help="wrk threads, at most (default 2)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the logs")
    p.add_argument(
        "--pg-dsn",
        default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin DSN (its database is used to create and drop the bench database)",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    p.add_argument("--nats-url", default=os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument(
        "--ledger-timeout", type=float, default=120.0, help="seconds to wait for billing"
    )
    p.add_argument(
        "--internal-tls",
        choices=("on", "off"),
        default="on",
        help="mutual TLS between the services (default on, as in production; off only to "
        "measure what it costs)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy each service during the gateway runs into this directory (collapsed"
        " stacks; needs py-spy; the figures of a profiled run are skewed by the sampling)",
    )
    p.add_argument(
        "--tracing",
        choices=("on", "off"),
        default="on",
        help="trace export to a local OTLP sink (default on, as in production)",
    )
    p.add_argument(
        "--trace-sample",
        type=float,
        default=PRODUCTION_SAMPLE_RATIO,
        help=f"share of requests traced (OTEL_TRACES_SAMPLER_ARG; default"
        f" {PRODUCTION_SAMPLE_RATIO:g}, the production configuration)",
    )
    p.add_argument(
        "--compare",
        default=",".join(OTHER_GATEWAYS),
        help="other gateways to run beside unigate where installed by bench/compare/setup.sh"
        f" (default {','.join(OTHER_GATEWAYS)}; 'none' for none)",
    )
    p.add_argument(
        "--rss-requests",
        type=int,
        default=0,
        help="the memory run instead: this many requests through the gateway after the"
        " warm-up, each service's RSS sampled along (issue 22: 200000); 0 (default) for the"
        " latency/throughput run",
    )
    p.add_argument(
        "--rss-warmup", type=int, default=20_000, help="requests before the first RSS sample"
    )
    p.add_argument("--rss-every", type=int, default=20_000, help="requests between RSS samples")
    p.add_argument(
        "--rss-connections", type=int, default=32, help="wrk connections of the memory run"
    )
    args = p.parse_args(argv)
    args.compare_list = [
        n.strip() for n in str(args.compare).split(",") if n.strip() and n.strip() != "none"
    ]
    unknown = [n for n in args.compare_list if n not in OTHER_GATEWAYS]
    if unknown:
        p.error(f"--compare: unknown {', '.join(unknown)} (known: {', '.join(OTHER_GATEWAYS)})")
    if args.rss_requests < 0 or args.rss_warmup < 0 or args.rss_every < 1:
        p.error("--rss-requests and --rss-warmup must be >= 0, --rss-every >= 1")
    if args.rss_connections < 1:
        p.error("--rss-connections must be positive")
    if not 0.0 <= args.trace_sample <= 1.0:
        p.error("--trace-sample must be within [0, 1]")
    try:
        conns = [int(c) for c in str(args.connections).split(",") if c.strip()]
    except ValueError:
        p.error("--connections must be a comma-separated list of integers")
    if not conns or any(c < 1 for c in conns) or args.duration < 1 or args.threads < 1:
        p.error("connections, duration and threads must be positive")
    args.connection_list = conns
    return args


def start_others(
    args: argparse.Namespace, nginx: Nginx, workdir: Path, started: list[OtherGateway]
) -> list[str]:
    """Start the other gateways asked for that are installed, each in front of the nginx;
    append the running ones to ``started`` and return a line about each (run, or skipped and
    why). One that is missing or does not come up is skipped: it is not unigate's bench."""
    notes = []
    for name in args.compare_list:
        port = free_port()
        gw_dir = workdir / name
        try:
            o = (
                start_litellm(nginx.url, MODEL, port, gw_dir)
                if name == "litellm"
                else start_portkey(nginx.url, port, gw_dir)
            )
        except OSError as e:
            o, why = None, f"{name} could not be started: {e}"
        else:
            why = NOT_INSTALLED.format(name=name)
        if o is None:
            print(why, flush=True)
            notes.append(why)
            continue
        started.append(o)
        try:
            o.wait_ready(CHAT_BODY, timeout=180)
        except GatewayError as e:
            why = f"{name} {o.version} did not come up: skipped ({str(e).splitlines()[0]})"
            print(why + "\n" + o.tail(), flush=True)
            o.stop()
            started.remove(o)
            notes.append(why)
            continue
        line = f"{name} {o.version} on {o.url.rsplit('/v1', 1)[0]} (pid {o.pid})"
        print(line, flush=True)
        notes.append(
            name
            + " "
            + o.version
            + (
                ": one proxy process (`litellm --config`), one model `openai/gpt-4o-mini` with"
                " `api_base` = the nginx, a master key, telemetry off, local model cost map"
                if name == "litellm"
                else ": `node build/start-server.js --headless`, NODE_ENV=production, routed by"
                " `x-portkey-provider: openai` and `x-portkey-custom-host: <nginx>/v1`"
            )
        )
    return notes


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is not on PATH", file=sys.stderr)
            return 2

    suffix = secrets.token_hex(4)
    namespace = f"bench{suffix}"
    db_name = f"unigate_bench_{suffix}"
    dsn = with_database(args.pg_dsn, db_name)
    secret_key = secrets.token_urlsafe(32)
    workdir = Path(tempfile.mkdtemp(prefix=f"unigate-{namespace}-"))
    log_dir = workdir / "logs"
    nginx = Nginx(workdir)
    sink = Sink(free_port(), workdir, args.trace_sample) if args.tracing == "on" else None
    stack: Stack | None = None
    others: list[OtherGateway] = []
    failed = True
    print(
        f"namespace {namespace}, database {db_name}, temp dir {workdir}, {configuration(args)}",
        flush=True,
    )
    try:
        if sink is not None:
            sink.start()
        nginx.start()
        print(f"nginx (direct upstream) on {nginx.url}", flush=True)
        fixture = asyncio.run(prepare_database(dsn, secret_key, nginx.url))
        stack = Stack(
            StackConfig(
                sql_dsn=dsn,
                namespace=namespace,
                secret_key=secret_key,
                redis_url=args.redis_url,
                nats_url=args.nats_url,
                ports=StackPorts.free(),
                simulator=None,
                log_dir=log_dir,
                internal_tls=args.internal_tls == "on",
                extra_env=sink.env() if sink is not None else {},
            )
        )
        stack.start(timeout=60)
        print(f"stack up, gateway on {stack.gateway_url}", flush=True)
        if args.rss_requests:
            failed = not rss_bench(args, nginx, stack, dsn, fixture, sink)
        else:
            notes = start_others(args, nginx, workdir, others)
            failed = not bench(args, nginx, stack, dsn, fixture, sink, others, notes)
    except BenchError as e:
        print(f"FAILED: {e}", file=sys.stderr)
    finally:
        for o in others:
            o.stop()
        cleanup(args, stack, nginx, db_name, namespace)
        if sink is not None:
            sink.stop()
            print(f"spans received by the OTLP sink: {sink.spans()}")
        if log_dir.exists():
            problems = scan_logs(log_dir)
            print(f"service log lines at warning/error level: {len(problems)}")
            for line in problems[:20]:
                print("  " + line[:500])
        if args.keep_logs or failed:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def smoke(gateway_url: str, key: str) -> None:
    """One request through the gateway: 200 with nginx's usage, or the bench stops."""
    with httpx.Client(timeout=30.0) as client:
        r = client.post(
            gateway_url + CHAT_PATH, json=CHAT_BODY, headers={"Authorization": f"Bearer {key}"}
        )
    if r.status_code != 200:
        raise BenchError(f"gateway smoke request: {r.status_code} {r.text[:500]}")
    usage = r.json().get("usage", {})
    if usage.get("total_tokens") != 21:
        raise BenchError(f"gateway smoke request: unexpected usage {usage}")


def service_pids(stack: Stack, nginx: Nginx, sink: Sink | None) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    for i, pid in enumerate(nginx.worker_pids()):
        pids["nginx" if i == 0 else f"nginx{i}"] = pid
    if sink is not None and sink.proc is not None:
        pids[SINK] = sink.proc.pid
    return pids


def check_ledger(
    args: argparse.Namespace,
    dsn: str,
    fixture: Fixture,
    gateway_runs: list[WrkResult],
    extra_ok: int,
) -> tuple[str, list[str]]:
    """One consume row per 2xx the gateway served: the summary line and the problems.

    wrk only counts the responses that completed within a run; a request still in flight when
    it stopped (at most one per connection) may still have been served and billed."""
    wrk_requests = sum(r.requests for r in gateway_runs)
    wrk_non2xx = sum(r.non2xx for r in gateway_runs)
    expected = wrk_requests - wrk_non2xx + extra_ok
    in_flight_max = sum(r.connections for r in gateway_runs)
    rows = asyncio.run(wait_for_ledger(dsn, fixture.token_id, expected, args.ledger_timeout))
    extra = rows - expected
    ledger_line = f"ledger rows: {rows}, gateway 2xx responses: {expected}"
    print(ledger_line)
    print(
        f"  (wrk: {wrk_requests} requests minus {wrk_non2xx} non-2xx over {len(gateway_runs)}"
        f" gateway runs incl. warm-up, plus {extra_ok} smoke request; ledger - 2xx = {extra},"
        f" allowed 0..{in_flight_max} for requests in flight when wrk stopped)"
    )
    problems = []
    errors = sum(r.errors for r in gateway_runs)
    if errors:
        problems.append(f"{errors} non-2xx/socket errors through the gateway")
    if not 0 <= extra <= in_flight_max:
        problems.append(
            f"ledger mismatch: {rows} rows for {expected} 2xx responses"
            f" (allowed extra 0..{in_flight_max})"
        )
    return ledger_line + f" (extra {extra}, allowed 0..{in_flight_max})", problems


@dataclass(frozen=True, slots=True)
class Target:
    """Where one wrk run goes, and which processes' CPU it is charged with."""

    name: str
    url: str
    key: str
    pids: dict[str, int]
    headers: dict[str, str] = field(default_factory=dict)


def bench(
    args: argparse.Namespace,
    nginx: Nginx,
    stack: Stack,
    dsn: str,
    fixture: Fixture,
    sink: Sink | None = None,
    others: list[OtherGateway] | None = None,
    notes: list[str] | None = None,
) -> bool:
    smoke(stack.gateway_url, fixture.key)
    extra_ok = 1  # 2xx the gateway served outside wrk (the smoke request)

    machine = machine_info()  # before the load: the load average tells of other work
    pids = service_pids(stack, nginx, sink)
    nginx_pids = {k: v for k, v in pids.items() if k.startswith("nginx")}
    targets = [
        Target("direct", nginx.url + CHAT_PATH, fixture.key, pids),
        Target("gateway", stack.gateway_url + CHAT_PATH, fixture.key, pids),
    ]
    for o in others or []:
        if o.pid is not None:
            targets.append(Target(o.name, o.url, o.key, {o.name: o.pid, **nginx_pids}, o.headers))
    gateway_runs: list[WrkResult] = []
    warm_c = max(args.connection_list)
    for t in targets:
        print(f"warm-up {t.name} ({WARMUP_SECONDS} s, {warm_c} connections)", flush=True)
        w = run_wrk(t.name, t.url, t.key, warm_c, args.threads, WARMUP_SECONDS, headers=t.headers)
        if t.name == "gateway":
            gateway_runs.append(w)
        if w.errors:
            print(f"  warm-up {t.name}: {w.errors} errors", flush=True)

    report = Report()
    for c in args.connection_list:
        for t in targets:
            print(f"{t.name}: -c {c} -t {min(c, args.threads)} -d {args.duration}s", flush=True)
            res = run_wrk(
                t.name,
                t.url,
                t.key,
                c,
                args.threads,
                args.duration,
                t.pids,
                args.profile if t.name == "gateway" else None,
                t.headers,
            )
            print(
                f"  {res.requests} requests, {res.rps:,.0f} req/s, p50 {res.p50_ms:.2f} ms,"
                f" p99 {res.p99_ms:.2f} ms, errors {res.errors}",
                flush=True,
            )
            if t.name != "direct" and res.cpu_ms_per_request:
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(res.cpu_ms_per_request.items()))
                print(f"  CPU ms/request: {cpu}", flush=True)
                if res.backing_ms_per_request:
                    shared = ", ".join(
                        f"{k} {v:.2f}" for k, v in sorted(res.backing_ms_per_request.items())
                    )
                    print(
                        f"  backing stores and wrk: {shared}; whole machine"
                        f" {res.machine_ms_per_request:.2f}",
                        flush=True,
                    )
            if t.name == "direct":
                report.direct.append(res)
            elif t.name == "gateway":
                report.gateway.append(res)
                gateway_runs.append(res)
            else:
                report.others.append(res)

    table = report.table()
    print()
    print(table)
    print()
    if report.cpu_table():
        print("CPU ms per request during the gateway runs:")
        print(report.cpu_table())
        print()
    if report.others_cpu_table():
        print("CPU ms per request of the other gateways' process during their runs:")
        print(report.others_cpu_table())
        print()
    for line in report.bar():
        print(line)

    ledger_line, problems = check_ledger(args, dsn, fixture, gateway_runs, extra_ok)
    direct_errors = sum(r.errors for r in report.direct)
    if direct_errors:
        problems.append(f"{direct_errors} non-2xx/socket errors from nginx directly")
    others_errors = sum(r.errors for r in report.others)
    notes = list(notes or [])
    if others_errors:
        # Theirs to explain, not a failure of unigate's bench: shown in the table's column.
        notes.append(f"the other gateways answered {others_errors} requests with errors")
    status = "FAILED: " + "; ".join(problems) if problems else "ok (no errors, ledger matches)"
    write_results(args, report, ledger_line, status, machine, notes)
    print(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return False
    print("ok")
    return True


def rss_bench(
    args: argparse.Namespace,
    nginx: Nginx,
    stack: Stack,
    dsn: str,
    fixture: Fixture,
    sink: Sink | None = None,
) -> bool:
    """The memory bar: ``--rss-requests`` through the full path after ``--rss-warmup``, each
    service's RSS sampled every ``--rss-every`` requests (between wrk runs of about that many
    requests, sized from the rate so far), every sample within ±10 % of the first."""
    smoke(stack.gateway_url, fixture.key)
    machine = machine_info()
    pids = {n: p for n, p in service_pids(stack, nginx, sink).items() if n in rss.SERVICES}
    url = stack.gateway_url + CHAT_PATH
    c = args.rss_connections
    runs: list[WrkResult] = []
    served = 1  # 2xx so far, the smoke request included
    rate = 0.0

    def drive(requests: int, what: str) -> None:
        nonlocal served, rate
        goal = served + requests
        while served < goal:
            left = goal - served
            seconds = 5 if rate <= 0 else max(1, min(60, round(left / rate)))
            r = run_wrk("gateway", url, fixture.key, c, args.threads, seconds)
            runs.append(r)
            served += r.ok
            rate = r.requests / seconds if r.requests else rate
            print(
                f"  {what}: {served:,} served, {r.rps:,.0f} req/s, p99 {r.p99_ms:.1f} ms,"
                f" errors {r.errors}",
                flush=True,
            )
            if r.errors:
                raise BenchError(f"{r.errors} non-2xx/socket errors through the gateway")

    print(f"warm-up: {args.rss_warmup:,} requests at {c} connections", flush=True)
    drive(args.rss_warmup, "warm-up")
    samples = [rss.sample(served, pids)]
    print(f"  RSS after warm-up: {samples[0].rss_kib}", flush=True)
    measured_from = served
    while served - measured_from < args.rss_requests:
        step = min(args.rss_every, args.rss_requests - (served - measured_from))
        drive(step, "load")
        samples.append(rss.sample(served, pids))
        print(f"  RSS at {served:,}: {samples[-1].rss_kib}", flush=True)

    table = rss.table(samples)
    lines, met = rss.verdicts(samples)
    print()
    print(table)
    print()
    for line in lines:
        print(line)
    ledger_line, problems = check_ledger(args, dsn, fixture, runs, 1)
    status = "FAILED: " + "; ".join(problems) if problems else "ok (no errors, ledger matches)"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_keeping_history(
        RSS_RESULTS_FILE,
        "\n".join(
            [
                "# Memory under load",
                "",
                "Written by `bench/run.py --rss-requests N` (see `bench/README.md`): each"
                " service's VmRSS (the process and its children, from /proc) after a warm-up"
                " and then every few thousand requests through the full gateway path (wrk,"
                " nginx as the instant upstream); the bar is every sample within ±10 % of the"
                " first.",
                "",
                f"## {now}",
                "",
                *machine,
                f"- load average (1/5/15 min) at the end: {load_average()}",
                f"- run: `bench/run.py --rss-requests {args.rss_requests}"
                f" --rss-warmup {args.rss_warmup} --rss-every {args.rss_every}"
                f" --rss-connections {c} --internal-tls {args.internal_tls}"
                f" --tracing {args.tracing}"
                + (f" --trace-sample {args.trace_sample:g}" if args.tracing == "on" else "")
                + "`",
                f"- configuration: {configuration(args)}",
                f"- requests after the warm-up: {served - measured_from:,}"
                f" ({len(runs)} wrk runs in all, {served:,} gateway 2xx with the warm-up)",
                "",
                table,
                "",
                *[f"- {line}" for line in lines],
                f"- {ledger_line}",
                f"- status: {status}",
                "",
            ]
        ),
    )
    print(f"wrote {RSS_RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return False
    print("ok" if met else "ok (no errors, ledger matches; the memory bar is NOT met)")
    return True


def cleanup(
    args: argparse.Namespace, stack: Stack | None, nginx: Nginx, db_name: str, namespace: str
) -> None:
    """Each step runs whatever the previous ones did."""
    steps: list[tuple[str, Callable[[], object]]] = []
    if stack is not None:
        steps.append(("stop stack", stack.stop))
    steps += [
        ("stop nginx", nginx.stop),
        ("drop database", lambda: asyncio.run(drop_database(args.pg_dsn, db_name))),
        ("delete redis keys", lambda: delete_redis_keys(args.redis_url, namespace)),
        ("delete usage stream", lambda: asyncio.run(delete_stream(args.nats_url, namespace))),
    ]
    for what, fn in steps:
        try:
            fn()
        except Exception as e:  # cleanup carries on whatever failed
            print(f"cleanup: {what} failed: {e!r}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
