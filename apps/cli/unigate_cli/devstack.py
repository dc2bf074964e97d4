"""Run the whole stack (simulator + auth + relay + billing + gateway) as local processes.

Used by ``make dev`` (foreground, logs to the terminal), by the tests and by the benchmark
(each with its own namespace, database and ports, so they never collide).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

import grpc
import httpx

from unigate.certs import TlsFiles, ensure_certificates
from unigate.grpcutil import client_channel

# Below Linux's range for outgoing connections (ip_local_port_range, 32768-60999): a port
# the kernel picked there (bind to 0) can be taken by any client socket between this check and
# the service's own bind (seen: a billing ops port "already in use" in CI); here only another
# listener can take it, and this process never hands the same one out twice.
_PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(500):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


def ready_timeout() -> float:
    """How long processes get to become ready at least: 30 s, or ``UNIGATE_READY_TIMEOUT`` (a
    machine shared with other test runs took 54 s to start a stack at a load average of 22)."""
    return float(os.environ.get("UNIGATE_READY_TIMEOUT", "30"))


@dataclass
class StackPorts:
    gateway: int = 3000
    auth: int = 50051
    relay: int = 50061
    billing: int = 50071
    auth_ops: int = 9101
    relay_ops: int = 9102
    billing_ops: int = 9103
    simulator: int = 8900
    gateway_ops: int = 9100

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*(free_port() for _ in fields(cls)))


@dataclass
class StackConfig:
    sql_dsn: str
    namespace: str
    secret_key: str
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    ports: StackPorts = field(default_factory=StackPorts)
    simulator_key: str = "sk-sim-dev"
    # None: no simulator is started.
    simulator: str | None = "openai"
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Internal mutual TLS, on as in production. The certificates are made at start-up in
    # `tls_dir` (a new temporary directory if None) unless they are there already.
    internal_tls: bool = True
    tls_dir: Path | None = None

    def env(self) -> dict[str, str]:
        p = self.ports
        env = dict(os.environ)
        env.update(
            {
                "SQL_DSN": self.sql_dsn,
                "REDIS_CONN_STRING": self.redis_url,
                "NATS_URL": self.nats_url,
                "UNIGATE_NAMESPACE": self.namespace,
                "SECRET_KEY": self.secret_key,
                "PORT": str(p.gateway),
                "GATEWAY_OPS_PORT": str(p.gateway_ops),
                "HOST": "127.0.0.1",
                "AUTH_LISTEN": f"127.0.0.1:{p.auth}",
                "AUTH_ADDR": f"127.0.0.1:{p.auth}",
                "AUTH_OPS_PORT": str(p.auth_ops),
                "RELAY_LISTEN": f"127.0.0.1:{p.relay}",
                "RELAY_ADDRS": f"*=127.0.0.1:{p.relay}",
                "RELAY_OPS_PORT": str(p.relay_ops),
                "BILLING_LISTEN": f"127.0.0.1:{p.billing}",
                "BILLING_ADDR": f"127.0.0.1:{p.billing}",
                "BILLING_OPS_PORT": str(p.billing_ops),
                "PYTHONUNBUFFERED": "1",
                "INTERNAL_TLS": "on" if self.internal_tls else "off",
            }
        )
        if self.internal_tls and self.tls_dir is not None:
            env["TLS_DIR"] = str(self.tls_dir)
        env.update(self.extra_env)
        return env


class Stack:
    """The processes of one stack. ``start`` returns once every service reports ready."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        if config.internal_tls:
            if config.tls_dir is None:
                config.tls_dir = Path(tempfile.mkdtemp(prefix="unigate-certs-"))
            ensure_certificates(config.tls_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.gateway}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.simulator}"

    def tls_files(self, identity: str = "admin") -> TlsFiles | None:
        """The certificate files of ``identity`` in this stack (None with internal TLS off)."""
        if self.config.tls_dir is None or not self.config.internal_tls:
            return None
        return TlsFiles.in_dir(self.config.tls_dir, identity)

    def client_channel(self, service: str, identity: str = "admin") -> grpc.aio.Channel:
        """A gRPC channel to this stack's ``service`` ("auth", "relay", "billing") as
        ``identity`` (``grpcutil.client_channel`` with this stack's address and files)."""
        return client_channel(self.grpc_address(service), self.tls_files(identity), service)

    def grpc_address(self, service: str) -> str:
        p = self.config.ports
        port = {"auth": p.auth, "relay": p.relay, "billing": p.billing}[service]
        return f"127.0.0.1:{port}"

    def _commands(self) -> dict[str, list[str]]:
        py = sys.executable
        cmds: dict[str, list[str]] = {}
        if self.config.simulator:
            cmds["simulator"] = [
                py,
                "-m",
                "unigate_sim",
                self.config.simulator,
                "--port",
                str(self.config.ports.simulator),
                "--api-key",
                self.config.simulator_key,
            ]
        cmds.update(
            {
                "auth": [py, "-m", "unigate_auth"],
                "relay": [py, "-m", "unigate_relay", "--providers", "all"],
                "billing": [py, "-m", "unigate_billing"],
                "gateway": [py, "-m", "unigate_gateway"],
            }
        )
        return cmds

    def start_process(self, name: str) -> None:
        cmd = self._commands()[name]
        out: IO[bytes] | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.config.log_dir / f"{name}.log", "ab")  # noqa: SIM115
            self._logs[name] = out
        self.procs[name] = subprocess.Popen(
            cmd, env=self.config.env(), stdout=out, stderr=subprocess.STDOUT if out else None
        )

    def start(self, timeout: float | None = None) -> None:
        for name in self._commands():
            self.start_process(name)
        self.wait_ready(timeout)

    def ready_urls(self) -> dict[str, str]:
        p = self.config.ports
        urls = {
            "auth": f"http://127.0.0.1:{p.auth_ops}/readyz",
            "relay": f"http://127.0.0.1:{p.relay_ops}/readyz",
            "billing": f"http://127.0.0.1:{p.billing_ops}/readyz",
            "gateway": f"{self.gateway_url}/readyz",
        }
        if self.config.simulator:
            urls["simulator"] = f"{self.simulator_url}/v1/models"
        return urls

    def wait_ready(self, timeout: float | None = None, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + max(timeout or 0.0, ready_timeout())
        pending = {n: u for n, u in self.ready_urls().items() if names is None or n in names}
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    proc = self.procs.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {proc.returncode}{self._tail(name)}"
                        )
                    try:
                        status = client.get(url).status_code
                    except httpx.HTTPError:
                        continue
                    # The simulator answers 401 without a key: that still means it is up.
                    if status == 200 or (name == "simulator" and status == 401):
                        del pending[name]
                if pending:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not ready: {', '.join(pending)}{self._tail(*pending)}")
                    time.sleep(0.1)

    def _tail(self, *names: str) -> str:
        if self.config.log_dir is None:
            return ""
        out = []
        for name in names:
            path = self.config.log_dir / f"{name}.log"
            if path.exists():
                out.append(f"\n--- {name} ---\n" + path.read_text(errors="replace")[-3000:])
        return "".join(out)

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop(self) -> None:
        # The gateway first, so that it flushes its usage events while billing still runs.
        order = ["gateway", "relay", "auth", "billing", "simulator"]
        for name in order + [n for n in list(self.procs) if n not in order]:
            self.stop_process(name)
