"""Entry point: ``unigate-gateway`` (or ``python -m unigate_gateway``)."""

from __future__ import annotations

import argparse

import uvicorn

from unigate.logs import add_log_dir_argument, configure_logging
from unigate.telemetry import setup_tracing
from unigate_gateway.app import create_app
from unigate_gateway.edge import HeadLimits, http_protocol
from unigate_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    parser = argparse.ArgumentParser(prog="unigate-gateway")
    add_log_dir_argument(parser)
    args = parser.parse_args()
    configure_logging("gateway", settings.log_level, args.log_dir)
    setup_tracing("unigate-gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools with limits on each request's head (size, header count, read time).
        http=http_protocol(
            HeadLimits(
                max_bytes=settings.max_header_bytes,
                max_count=settings.max_header_count,
                read_timeout=settings.header_read_timeout,
            )
        ),
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections,
        access_log=False,
        # The gateway resolves the client IP itself (TRUSTED_PROXIES); uvicorn's own
        # X-Forwarded-For handling would trust 127.0.0.1 behind our back.
        proxy_headers=False,
        log_config=None,
        # On SIGTERM uvicorn stops accepting, lets responses (streams too) in flight finish
        # for up to this long, then runs the lifespan's shutdown: the usage buffer's flush.
        timeout_graceful_shutdown=round(settings.drain_timeout),
    )


if __name__ == "__main__":
    main()
