"""Configuration shared by every service, read from environment variables.

Names follow One API where it has one (`SQL_DSN`, `REDIS_CONN_STRING`, `SESSION_SECRET`, `PORT`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from unigate.certs import CA_FILE, TlsFiles

log = logging.getLogger(__name__)


class CommonSettings(BaseSettings):
    """Settings every service reads. Each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    sql_dsn: str = Field("postgresql://postgres@127.0.0.1:5432/unigate", alias="SQL_DSN")
    redis_conn_string: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_CONN_STRING")
    nats_url: str = Field("nats://127.0.0.1:4222", alias="NATS_URL")
    # Prefix of every Redis key, NATS subject and JetStream stream this deployment uses, so
    # that several deployments (or test runs) can share one Redis and one NATS.
    namespace: str = Field("unigate", alias="UNIGATE_NAMESPACE")
    # Encrypts provider secrets at rest. Must be the same for auth and the admin CLI.
    secret_key: str = Field("", alias="SECRET_KEY")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # On SIGTERM: how long calls and streams in flight may take to finish before they are cut.
    drain_timeout: float = Field(30.0, alias="SHUTDOWN_DRAIN_TIMEOUT")
    # Copies of the usage stream a NATS cluster keeps, and where (a cluster's name, server
    # tags, comma-separated): an existing stream is updated to them at start.
    usage_stream_replicas: int = Field(1, ge=1, le=5, alias="USAGE_STREAM_REPLICAS")
    usage_stream_cluster: str = Field("", alias="USAGE_STREAM_CLUSTER")
    usage_stream_tags: str = Field("", alias="USAGE_STREAM_TAGS")

    # Mutual TLS on every internal gRPC hop (docs/security.md). Off only for local
    # experiments: then anyone who reaches a port may call anything, and every process says so.
    internal_tls: bool = Field(True, alias="INTERNAL_TLS")
    # A directory made by `unigate certs` (ca.pem, <identity>.pem, <identity>-key.pem); the
    # three files below, when set, name them one by one instead.
    tls_dir: str = Field("", alias="TLS_DIR")
    tls_ca_file: str = Field("", alias="TLS_CA_FILE")
    tls_cert_file: str = Field("", alias="TLS_CERT_FILE")
    tls_key_file: str = Field("", alias="TLS_KEY_FILE")

    def tls_files(self, identity: str) -> TlsFiles | None:
        """This process's internal TLS files as ``identity`` ("gateway", "auth", "relay",
        "billing", "admin"), or None when INTERNAL_TLS is off."""
        if not self.internal_tls:
            log.warning(
                "INTERNAL_TLS is off: internal gRPC is PLAINTEXT and UNAUTHENTICATED; anyone "
                "who can reach a port may read provider keys, spend quota and delete the "
                "ledger. For local experiments only."
            )
            return None
        default = TlsFiles.in_dir(self.tls_dir, identity) if self.tls_dir else None
        paths = {
            "TLS_CA_FILE": self.tls_ca_file or (default and default.ca),
            "TLS_CERT_FILE": self.tls_cert_file or (default and default.cert),
            "TLS_KEY_FILE": self.tls_key_file or (default and default.key),
        }
        missing = [name for name, path in paths.items() if not path or not Path(path).is_file()]
        if missing:
            raise RuntimeError(
                f"internal TLS ({identity}): no file for {', '.join(missing)}. Make the "
                f"certificates with `unigate certs --out DIR` and set TLS_DIR=DIR (or "
                f"TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE); INTERNAL_TLS=off turns internal "
                f"TLS off for local experiments. Looked for {CA_FILE} etc. in "
                f"{self.tls_dir or '(TLS_DIR unset)'}."
            )
        return TlsFiles(*(Path(str(p)) for p in paths.values()))

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_token(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", value):
            raise ValueError("UNIGATE_NAMESPACE must match [a-z][a-z0-9_]{0,30}")
        return value


T = TypeVar("T")

#: RELAY_ADDRS entry for a relay that serves every family not listed on its own (``*=addr``).
ANY_FAMILY = "*"


def relay_for(relays: Mapping[str, T], family: str) -> T | None:
    """The relay (address, stub, ...) serving ``family``: its own entry, else the ``*`` one."""
    return relays.get(family) or relays.get(ANY_FAMILY)


def parse_relay_addrs(text: str) -> dict[str, str]:
    """``"openai=10.0.0.5:50061,anthropic=relay-anthropic:50061"`` as a family → address map.

    A part without ``=`` continues the address before it, so a family may name several relays
    in gRPC's own list syntax, balanced round-robin by the client:
    ``openai=ipv4:10.0.0.5:50061,10.0.0.6:50061``."""
    out: dict[str, str] = {}
    family = ""
    for part in text.split(","):
        if "=" in part:
            family, addr = part.split("=", 1)
            family = family.strip()
            out[family] = addr.strip()
        elif family and part.strip():
            out[family] += "," + part.strip()
    return out
