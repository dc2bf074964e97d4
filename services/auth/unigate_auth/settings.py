from __future__ import annotations

from pydantic import Field

from unigate.settings import CommonSettings


class AuthSettings(CommonSettings):
    listen: str = Field("127.0.0.1:50051", alias="AUTH_LISTEN")
    ops_host: str = Field("127.0.0.1", alias="OPS_HOST")
    ops_port: int = Field(9101, alias="AUTH_OPS_PORT")
    # In-process caches of keys, users and channels; NATS invalidation makes changes visible
    # at once, the TTL bounds staleness should a broadcast be missed.
    cache_ttl_seconds: float = Field(5.0, alias="AUTH_CACHE_TTL")
    # Reservation when the request names no max_tokens (prompt estimate is added).
    default_completion_reserve: int = Field(512, alias="DEFAULT_COMPLETION_RESERVE")
    max_completion_reserve: int = Field(32_768, alias="MAX_COMPLETION_RESERVE")
