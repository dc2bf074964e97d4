"""Postgres, Redis and NATS servers of a test's own, on free ports, for tests that stop them: the
machine's shared servers are never stopped or flushed."""

from __future__ import annotations

import asyncio
import glob
import shutil
import socket
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


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class OwnRedisCluster:
    """A real Redis Cluster: ``masters`` masters with one replica each, each node its own
    ``redis-server --cluster-enabled yes`` on free ports, joined by ``redis-cli --cluster
    create``. Without persistence, as ``OwnRedis``."""

    def __init__(self, base: Path, masters: int = 3) -> None:
        self.dir = base
        self.ports = [_cluster_port() for _ in range(masters * 2)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start_node(self, port: int) -> None:
        with (self.dir / f"redis-{port}.log").open("ab") as out:
            self.procs[port] = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    # Its own files: never an RDB some other server left in the cwd.
                    "--dir",
                    str(self.dir),
                    "--dbfilename",
                    f"dump-{port}.rdb",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    # A dead master is replaced within ~2 s of going silent.
                    "--cluster-node-timeout",
                    "2000",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        client = sync_redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except sync_redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()
        # Until every master's replica has joined (a master killed before could not fail over).
        deadline = time.monotonic() + 60
        while not all(self._shards()) or len(self._shards()) * 2 != len(self.ports):
            assert time.monotonic() < deadline, f"replicas never joined: {self._shards()}"
            time.sleep(0.2)
        for replica in (r for shard in self._shards() for r in shard):
            link = sync_redis.Redis(port=replica).info("replication")
            while link["master_link_status"] != "up":
                assert time.monotonic() < deadline, f"replica {replica} never synced"
                time.sleep(0.1)
                link = sync_redis.Redis(port=replica).info("replication")

    def _shards(self) -> list[list[int]]:
        """Per master serving slots (as one live node sees them): its replicas' ports."""
        for port in self.procs:
            try:
                shards = sync_redis.Redis(port=port).execute_command("CLUSTER", "SLOTS")
            except sync_redis.ConnectionError:
                continue
            by_master: dict[int, list[int]] = {}
            for _, _, master, *replicas in shards:
                by_master[int(master[1])] = [int(r[1]) for r in replicas]
            return list(by_master.values())
        return []

    def wait_ok(self, within: float = 60.0) -> None:
        """Until every live node says the cluster is ok and sees all 16384 slots served."""
        deadline = time.monotonic() + within
        while True:
            states = []
            for port in self.procs:
                try:
                    info = sync_redis.Redis(port=port).cluster("info")
                except sync_redis.ConnectionError:
                    states.append("unreachable")
                    continue
                states.append(str(info.get("cluster_state")) + str(info.get("cluster_slots_ok")))
            if all(s == "ok16384" for s in states):
                return
            assert time.monotonic() < deadline, f"cluster not ok: {states}"
            time.sleep(0.2)

    def master_of(self, slot: int) -> tuple[int, list[int]]:
        """The port of the master serving ``slot``, and its replicas' ports."""
        for port in self.procs:
            try:
                shards = sync_redis.Redis(port=port).execute_command("CLUSTER", "SLOTS")
            except sync_redis.ConnectionError:
                continue
            for start, end, master, *replicas in shards:
                if start <= slot <= end:
                    return int(master[1]), [int(r[1]) for r in replicas]
        raise AssertionError(f"no node serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL a node: no goodbye, as a machine lost."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def kill_master_of(self, slot: int, within: float = 60.0) -> tuple[int, int]:
        """SIGKILL the master serving ``slot`` and wait until its replica took over and the
        cluster is ok again; returns (the dead master's port, the new master's)."""
        dead, replicas = self.master_of(slot)
        assert replicas, f"master {dead} of slot {slot} has no replica"
        self.kill(dead)
        deadline = time.monotonic() + within
        while (new := self.master_of(slot)[0]) == dead:
            assert time.monotonic() < deadline, f"no replica of {dead} was promoted"
            time.sleep(0.1)
        self.wait_ok(within)
        return dead, new

    def stop(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            proc.wait(10)


class OwnRedisSentinel:
    """A master, its replica and one ``redis-server --sentinel`` watching them (quorum 1),
    each on free ports: the master killed, the Sentinel promotes the replica."""

    MASTER_NAME = "unigate"

    def __init__(self, base: Path) -> None:
        self.dir = base
        self.master, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{self.MASTER_NAME}/0"

    def _spawn(self, port: int, *args: str) -> None:
        with (self.dir / f"redis-{port}.log").open("ab") as out:
            self.procs[port] = subprocess.Popen(
                list(args), stdout=out, stderr=subprocess.STDOUT, cwd=self.dir
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                sync_redis.Redis(port=port).ping()
                return
            except sync_redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self._spawn(self.master, "redis-server", "--port", str(self.master), *common)
        self._spawn(
            self.replica,
            "redis-server",
            "--port",
            str(self.replica),
            *common,
            "--replicaof",
            "127.0.0.1",
            str(self.master),
        )
        # A Sentinel rewrites its configuration file: one of its own.
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {self.MASTER_NAME} 5000\n"
        )
        self._spawn(self.sentinel, "redis-server", str(conf), "--sentinel")
        deadline = time.monotonic() + 30
        while sync_redis.Redis(port=self.replica).info("replication")["master_link_status"] != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.1)

    def master_port(self) -> int:
        addr = sync_redis.Redis(port=self.sentinel).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME
        )
        return int(addr[1])

    def kill_master(self, within: float = 60.0) -> int:
        """SIGKILL the master; wait until the Sentinel names another; returns its port."""
        dead = self.master_port()
        proc = self.procs.pop(dead)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + within
        while (now := self.master_port()) == dead:
            assert time.monotonic() < deadline, "the Sentinel never promoted the replica"
            time.sleep(0.1)
        return now

    def stop(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            proc.wait(10)
