"""gRPC channel and server settings shared by the services."""

from __future__ import annotations

import grpc

from unigate import telemetry

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect fast after a peer restarts; the default backoff starts at 1 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# Clients spread calls over every address a target resolves to (several relays in a list,
# or a Kubernetes headless Service behind `dns:///`), instead of pinning one connection.
_CLIENT_OPTIONS = [*_OPTIONS, ("grpc.lb_policy_name", "round_robin")]


# Interceptors only when tracing: grpc.aio's interceptor path costs CPU on every call.
def insecure_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target, options=_CLIENT_OPTIONS, interceptors=telemetry.grpc_client_interceptors()
    )


def new_server() -> grpc.aio.Server:
    return grpc.aio.server(
        options=[
            *_OPTIONS,
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            # Clients reconnect (and so re-resolve `dns:///` targets, finding replicas added
            # since) every 5 minutes; calls in flight on the old connection are not cut.
            ("grpc.max_connection_age_ms", 300_000),
        ],
        interceptors=telemetry.grpc_server_interceptors(),
    )
