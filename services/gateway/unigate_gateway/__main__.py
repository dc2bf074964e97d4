"""Entry point: ``unigate-gateway`` (or ``python -m unigate_gateway``)."""

from __future__ import annotations

import uvicorn

from unigate.logs import configure_logging
from unigate.telemetry import setup_tracing
from unigate_gateway.app import create_app
from unigate_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    setup_tracing("unigate-gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # The gateway resolves the client IP itself (TRUSTED_PROXIES); uvicorn's own
        # X-Forwarded-For handling would trust 127.0.0.1 behind our back.
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
