"""Postgres, Redis and NATS servers of a test's own, on free ports, for tests that stop them: the
machine's shared servers are never stopped or flushed."""

from __future__ import annotations

import asyncio
import glob
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import nats
import redis as sync_redis

from unigate_cli.devstack import free_port

PG_BIN = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])


def _as_postgres(*cmd: str) -> list[str]:
    # initdb and the server refuse to run as root; the machine's postgres account runs them.
    return ["runuser", "-u", "postgres", "--", *cmd]


class OwnPostgres:
    """A cluster of its own: ``initdb`` once, then ``start``/``stop`` at will; ``remove``."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's temporary directory, which only root may enter.
        self.dir = Path(tempfile.mkdtemp(prefix="unigate-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
        )

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.dir),
                "-o",
                opts,
                "-l",
                str(self.dir / "server.log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop"),
            check=True,
            capture_output=True,
        )

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    async def wait_up(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                conn = await asyncpg.connect(self.admin_dsn, timeout=1)
                await conn.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


class OwnRedis:
    """A redis-server without persistence: stopped and started again, it comes back empty, as
    a Redis that lost its state."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.log = base / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        client = sync_redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except sync_redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def flush(self) -> None:
        sync_redis.Redis(port=self.port).flushall()


class OwnNatsCluster:
    """Three (or ``size``) nats-servers with JetStream, joined by routes into one cluster, each
    with its own store; any of them can be killed (SIGKILL, as a lost machine) and started
    again on the same ports and store, as a node coming back."""

    NATS_SERVER = "/usr/sbin/nats-server"

    def __init__(self, base: Path, size: int = 3, name: str = "unigate-test") -> None:
        self.base = base
        self.name = name
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        """The cluster as ``NATS_URL`` names it: every member, comma-separated."""
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    def server_name(self, i: int) -> str:
        return f"n{i}"

    def start(self, i: int) -> None:
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
        store = self.base / self.server_name(i)
        store.mkdir(parents=True, exist_ok=True)
        with (self.base / f"{self.server_name(i)}.log").open("ab") as out:
            self.procs[i] = subprocess.Popen(
                [
                    self.NATS_SERVER,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.client_ports[i]),
                    "-n",
                    self.server_name(i),
                    "-js",
                    "-sd",
                    str(store),
                    "--cluster_name",
                    self.name,
                    "--cluster",
                    f"nats://127.0.0.1:{self.route_ports[i]}",
                    "--routes",
                    routes,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start_all(self) -> None:
        for i in range(len(self.procs)):
            self.start(i)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait(10)
            self.procs[i] = None

    def index_of(self, server_name: str) -> int:
        return [self.server_name(i) for i in range(len(self.procs))].index(server_name)

    def stop_all(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                self.procs[i] = None

    async def wait_jetstream(self, within: float = 60.0) -> None:
        """Until JetStream answers through every running member (a meta leader is elected)."""
        deadline = time.monotonic() + within
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            while True:
                try:
                    nc = await nats.connect(
                        f"nats://127.0.0.1:{self.client_ports[i]}",
                        max_reconnect_attempts=0,
                        connect_timeout=1,
                    )
                    try:
                        await nc.jetstream().account_info()
                        break
                    finally:
                        await nc.close()
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
