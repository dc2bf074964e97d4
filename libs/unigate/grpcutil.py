"""gRPC channel and server settings shared by the services, and their mutual TLS.

Every internal hop is TLS with a client certificate on both ends (``unigate.certs``): a
server presents its identity's certificate and requires the caller's, both from the internal
CA, and lets each call through only if the caller's identity may make it
(``unigate.rpc_acl``); a client checks that the server's certificate names the service it
meant to reach. ``client_channel`` is the one way to open a channel to a unigate service —
the services, the CLI, the benchmark and the tests all use it.

``tls=None`` (``INTERNAL_TLS=off``) is plaintext and unchecked, for local experiments only;
``CommonSettings.tls_files`` logs that loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import grpc

from unigate import telemetry
from unigate.certs import TlsFiles, key_matches
from unigate.reloading_channel import ReloadingChannel, file_stamp
from unigate.rpc_acl import CallerCheck

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect fast after a peer restarts; the default backoff starts at 1 s. Not
    # grpc.min_reconnect_backoff_ms: gRPC takes it as the connection attempt's timeout too,
    # and 100 ms for TCP plus a TLS handshake fails connections on a loaded machine.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# Clients spread calls over every address a target resolves to (several relays in a list,
# or a Kubernetes headless Service behind `dns:///`), instead of pinning one connection.
_CLIENT_OPTIONS = [*_OPTIONS, ("grpc.lb_policy_name", "round_robin")]


def _client_security(
    tls: TlsFiles | None, server: str
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, object]]]:
    if tls is None:
        return None, _CLIENT_OPTIONS
    ca, cert, key = tls.read()
    return grpc.ssl_channel_credentials(ca, key, cert), [
        *_CLIENT_OPTIONS,
        # The server's certificate must name the service dialled, whatever the address.
        ("grpc.ssl_target_name_override", server),
        # Connections of this channel only: never one of another channel made from other
        # (say, pre-rotation) credentials, which gRPC's process-wide pool could hand over.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _aio_channel(target: str, tls: TlsFiles | None, server: str) -> grpc.aio.Channel:
    credentials, options = _client_security(tls, server)
    # Interceptors only when tracing: grpc.aio's interceptor path costs CPU on every call.
    interceptors = telemetry.grpc_client_interceptors()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


def client_channel(
    target: str, tls: TlsFiles | None, server: str, *, recheck_files_every: float = 5.0
) -> grpc.aio.Channel:
    """A channel to the unigate service ``server`` ("auth", "relay", "billing") at
    ``target``, presenting the identity in ``tls``.

    The server's certificate must carry the DNS name ``server`` — whatever address was
    dialled (an IP, a list of relays, a ``dns:///`` name), so one service's certificate
    cannot pass for another's. When the files change (rotation), new calls go over a new
    connection made from them (``reloading_channel``)."""
    if tls is None:
        return _aio_channel(target, None, server)
    return ReloadingChannel(
        lambda files: _aio_channel(target, files, server), tls, recheck_every=recheck_files_every
    )


def blocking_client_channel(target: str, tls: TlsFiles | None, server: str) -> grpc.Channel:
    """``client_channel`` for grpc's synchronous API (tools such as the reflection client)."""
    credentials, options = _client_security(tls, server)
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


def new_server(tls: TlsFiles | None) -> grpc.aio.Server:
    """A server that checks every caller's identity when ``tls`` is given (add its port
    with ``listen``)."""
    interceptors: Sequence[grpc.aio.ServerInterceptor] = [
        *([CallerCheck()] if tls is not None else []),
        *(telemetry.grpc_server_interceptors() or []),
    ]
    return grpc.aio.server(
        options=[
            *_OPTIONS,
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            # Clients reconnect (and so re-resolve `dns:///` targets, finding replicas added
            # since) every 5 minutes; calls in flight on the old connection are not cut.
            ("grpc.max_connection_age_ms", 300_000),
        ],
        interceptors=interceptors or None,
    )


def listen(server: grpc.aio.Server, address: str, tls: TlsFiles | None) -> int:
    """Bind ``address``: mutual TLS with ``tls``'s files (reloaded when they change), else
    plaintext. Returns the port."""
    if tls is None:
        return server.add_insecure_port(address)
    port = server.add_secure_port(address, server_credentials(tls))
    log.info(
        "gRPC on %s: mutual TLS (certificate %s, clients of CA %s, checked per RPC)",
        address,
        tls.cert,
        tls.ca,
    )
    return port


class _ReloadingCertificates:
    """Feeds gRPC the server's certificate configuration, re-read when a file changes.

    gRPC asks before every new connection's handshake; a stat of three files is the cost.
    A changed key and certificate are taken only once they match each other (files being
    replaced one at a time), and an unreadable set keeps the one in use."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._stamp = file_stamp(self._files)
        config = self._load()
        if config is None:
            raise ValueError(f"{files.cert} does not belong to the key {files.key}")
        self.initial = config

    def _load(self) -> grpc.ServerCertificateConfiguration | None:
        ca, cert, key = self._files.read()
        if not key_matches(cert, key):
            return None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = file_stamp(self._files)
            if stamp == self._stamp:
                return None
            config = self._load()
        except OSError as exc:
            log.warning("TLS files unreadable, keeping the current ones: %s", exc)
            return None
        if config is None:
            return None  # a new key without its certificate yet: try again next handshake
        self._stamp = stamp
        log.info("TLS certificate reloaded from %s", self._files.cert)
        return config


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    reload = _ReloadingCertificates(tls)
    # gRPC's fetcher may answer None (keep the current configuration); its stub says not.
    fetch: Callable[[], grpc.ServerCertificateConfiguration] = reload  # type: ignore[assignment]
    return grpc.dynamic_ssl_server_credentials(
        reload.initial, fetch, require_client_authentication=True
    )
