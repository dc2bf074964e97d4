"""Postgres and Redis servers of a test's own, on free ports, for tests that stop them: the
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
