"""Configuration shared by every service, read from environment variables.

Names follow One API where it has one (`SQL_DSN`, `REDIS_CONN_STRING`, `SESSION_SECRET`, `PORT`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # Copies of the usage stream a NATS cluster keeps (set when the stream is first created).
    usage_stream_replicas: int = Field(1, alias="USAGE_STREAM_REPLICAS")

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
