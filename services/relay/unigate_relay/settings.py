from __future__ import annotations

from pydantic import Field

from unigate.settings import CommonSettings


class RelaySettings(CommonSettings):
    listen: str = Field("127.0.0.1:50061", alias="RELAY_LISTEN")
    ops_host: str = Field("127.0.0.1", alias="OPS_HOST")
    ops_port: int = Field(9102, alias="RELAY_OPS_PORT")
    auth_addr: str = Field("127.0.0.1:50051", alias="AUTH_ADDR")
    # Comma-separated provider families this deployment serves.
    providers: str = Field("openai", alias="RELAY_PROVIDERS")
    connect_timeout: float = Field(10.0, alias="UPSTREAM_CONNECT_TIMEOUT")
    # Time allowed for the first byte and between stream chunks.
    read_timeout: float = Field(300.0, alias="UPSTREAM_READ_TIMEOUT")
    max_connections: int = Field(1000, alias="UPSTREAM_MAX_CONNECTIONS")
    # The relay's record of each call's usage (next to its reservation, for a gateway that dies
    # before publishing) is written in batches gathered this long: one Redis round trip each.
    usage_record_linger_ms: int = Field(20, ge=0, le=1000, alias="USAGE_RECORD_LINGER_MS")
    usage_record_buffer: int = Field(100_000, alias="USAGE_RECORD_BUFFER_SIZE")
