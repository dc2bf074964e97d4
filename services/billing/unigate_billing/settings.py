from __future__ import annotations

from pydantic import Field

from unigate.settings import CommonSettings


class BillingSettings(CommonSettings):
    listen: str = Field("127.0.0.1:50071", alias="BILLING_LISTEN")
    ops_host: str = Field("127.0.0.1", alias="OPS_HOST")
    ops_port: int = Field(9103, alias="BILLING_OPS_PORT")
    # Messages per fetch; each message carries one or more events.
    batch_size: int = Field(100, alias="BILLING_BATCH_SIZE")
    # How long an unacked event waits before JetStream redelivers it.
    ack_wait_seconds: float = Field(30.0, alias="BILLING_ACK_WAIT")
    # A reservation still open after this long is settled (at the usage its relay recorded,
    # else its reserved amount) even if its gateway is alive; a dead gateway's are settled at
    # the next sweep after its heartbeat expires (GATEWAY_HEARTBEAT_TTL, 10 s): within
    # TTL + interval of its death.
    reservation_timeout_seconds: float = Field(900.0, alias="RESERVATION_TIMEOUT")
    sweep_interval_seconds: float = Field(10.0, alias="RESERVATION_SWEEP_INTERVAL")
