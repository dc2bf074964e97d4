"""The operational HTTP surface of a service: ``/healthz``, ``/readyz`` and ``/metrics``.

The gateway mounts these on its public app; the gRPC services serve them on their own port.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]
#: Sets gauges read from elsewhere (Redis, JetStream) just before a scrape, so that figures
#: costing a round trip are computed once per scrape, never per request.
ScrapeHook = Callable[[], Awaitable[None]]

log = logging.getLogger(__name__)
SCRAPE_HOOK_TIMEOUT = 5.0


async def run_scrape_hooks(hooks: Sequence[ScrapeHook]) -> None:
    """Run every hook; one that fails or hangs leaves its gauges as they were (logged)."""
    results = await asyncio.gather(
        *(asyncio.wait_for(h(), SCRAPE_HOOK_TIMEOUT) for h in hooks), return_exceptions=True
    )
    for hook, result in zip(hooks, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("metrics hook %s failed: %r", getattr(hook, "__qualname__", hook), result)


def ops_routes(ready: ReadyCheck, scrape: Sequence[ScrapeHook] = ()) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(_: Request) -> Response:
        if scrape:
            await run_scrape_hooks(scrape)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


async def serve_ops(
    host: str, port: int, ready: ReadyCheck, scrape: Sequence[ScrapeHook] = ()
) -> uvicorn.Server:
    """Start the ops server in the background; returns it so it can be stopped."""
    config = uvicorn.Config(
        Starlette(routes=ops_routes(ready, scrape)),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
    task = asyncio.create_task(server.serve())
    # uvicorn offers no "started" event; poll briefly so callers know the port is bound.
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return server


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: the signal to drain and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
