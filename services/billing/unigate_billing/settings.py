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
    # After this long without a delivery, billing looks whether the consumer is stuck
    # (messages pending, none delivered anywhere) and unsticks it (unigate_billing.stall).
    stall_seconds: float = Field(10.0, gt=0, alias="BILLING_STALL_SECONDS")
    # A reservation still open after this long is settled (at the usage its relay recorded,
    # else its reserved amount) even if its gateway is alive; a dead gateway's are settled at
    # the next sweep after its heartbeat expires (GATEWAY_HEARTBEAT_TTL, 10 s): within
    # TTL + interval of its death.
    reservation_timeout_seconds: float = Field(900.0, alias="RESERVATION_TIMEOUT")
    sweep_interval_seconds: float = Field(10.0, alias="RESERVATION_SWEEP_INTERVAL")
    # Log retention (unigate_billing.partitions): days consume rows are kept (0: forever;
    # whole UTC days are dropped as partitions), and per other type as ``type=days`` pairs
    # (1 top-up, 3 management, 4 system, 5 test), e.g. ``1=3650,3=365``.
    log_retention_days: int = Field(0, ge=0, alias="LOG_RETENTION_DAYS")
    log_retention_days_by_type: str = Field("", alias="LOG_RETENTION_DAYS_BY_TYPE")
    # How often partitions ahead are created and retention runs (one billing process at a time).
    log_maintenance_interval: float = Field(3600.0, gt=0, alias="LOG_MAINTENANCE_INTERVAL")
    # A read-only replica for the log queries, statistics and exports (the ledger's writes
    # and the audit stay on SQL_DSN); empty: the primary serves them too.
    sql_read_dsn: str = Field("", alias="SQL_READ_DSN")
