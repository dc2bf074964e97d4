"""Entry point: ``unigate-billing`` (or ``python -m unigate_billing``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvloop

from unigate import bus
from unigate.db import bound_namespace, create_pool
from unigate.gateways import GatewayRegistry
from unigate.grpc_introspection import Introspection
from unigate.grpcutil import listen, new_server
from unigate.heap import freeze_startup_heap
from unigate.logs import add_log_dir_argument, configure_logging
from unigate.metrics import reservations_hook
from unigate.ops import serve_ops, stop_event
from unigate.quota import QuotaStore
from unigate.redisconn import connect_redis
from unigate.telemetry import setup_tracing
from unigate.v1 import billing_pb2, billing_pb2_grpc
from unigate_billing.audit import Auditor
from unigate_billing.consumer import UsageConsumer
from unigate_billing.contents import ContentWriter
from unigate_billing.ledger import Ledger
from unigate_billing.metrics import consumer_lag_hook
from unigate_billing.partitions import Retention, maintain_forever, parse_retention_by_type
from unigate_billing.queries import BillingQueries
from unigate_billing.settings import BillingSettings
from unigate_billing.sweeper import ReservationSweeper

log = logging.getLogger("unigate_billing")


async def serve(settings: BillingSettings) -> bool:
    """Runs billing until SIGINT or SIGTERM; False when it stopped because it failed."""
    pool = await create_pool(settings.sql_dsn, min_size=2, max_size=8)
    # Hot state in Redis is bound to this database (read once: after a restore, restart).
    ns = await bound_namespace(pool, settings.namespace)
    redis = connect_redis(settings.redis_conn_string, max_connections=16)
    nc = await bus.connect(settings.nats_url, "unigate-billing")
    js = nc.jetstream()
    await bus.ensure_usage_stream(js, ns, bus.StreamPlacement.from_settings(settings))
    ledger, quota = Ledger(pool), QuotaStore(redis, ns)
    consumer = UsageConsumer(
        js,
        ns,
        ledger,
        quota,
        batch_size=settings.batch_size,
        ack_wait=settings.ack_wait_seconds,
        nc=nc,
        stall_after=settings.stall_seconds,
    )
    consuming = asyncio.create_task(consumer.run())
    sweeper = ReservationSweeper(
        ledger,
        quota,
        # Liveness of gateway processes is not state of the database: gateways have none.
        GatewayRegistry(redis, ns.unbound),
        timeout_seconds=settings.reservation_timeout_seconds,
        interval_seconds=settings.sweep_interval_seconds,
    )
    sweeping = asyncio.create_task(sweeper.run())
    retention = Retention(
        settings.log_retention_days, parse_retention_by_type(settings.log_retention_days_by_type)
    )
    maintaining = asyncio.create_task(
        maintain_forever(pool, retention, settings.log_maintenance_interval)
    )
    read_pool = (
        await create_pool(settings.sql_read_dsn, min_size=1, max_size=8)
        if settings.sql_read_dsn
        else None
    )
    # Content logging's bodies: best effort, beside the ledger, never through it.
    contents = ContentWriter(pool)
    await contents.subscribe(nc, ns.content_subject)
    storing_contents = asyncio.create_task(contents.run())

    tls = settings.tls_files("billing")
    server = new_server(tls)
    billing_pb2_grpc.add_BillingServiceServicer_to_server(
        BillingQueries(pool, Auditor(pool, redis, ns), quota, (js, ns), read_pool=read_pool),
        server,
    )
    introspection = Introspection(
        server, [billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name]
    )
    listen(server, settings.listen, tls)
    await server.start()
    await introspection.serving()
    freeze_startup_heap()

    async def ready() -> dict[str, bool]:
        checks = {"nats": nc.is_connected, "consumer": consumer.subscribed and not consuming.done()}
        try:
            checks["postgres"] = await pool.fetchval("SELECT 1") == 1
        except Exception:
            checks["postgres"] = False
        return checks

    ops = await serve_ops(
        settings.ops_host,
        settings.ops_port,
        ready,
        scrape=[consumer_lag_hook(js, ns), reservations_hook(redis, ns)],
    )
    log.info("billing consuming %s; queries on %s", ns.usage_stream, settings.listen)
    stop = stop_event()
    await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), consuming], return_when=asyncio.FIRST_COMPLETED
    )
    failed = consuming.done() and not stop.is_set()
    if failed:
        # Not reached while UsageConsumer.run keeps its promise; if it is, the process must not
        # look like a clean stop: a supervisor restarts a failed one.
        failure = consuming.exception() if not consuming.cancelled() else None
        log.critical("the usage consumer ended on its own (%r); billing exits", failure)
    else:
        log.info("billing shutting down")
    # The batch in hand is applied and acked (bounded by the drain timeout); anything fetched
    # but unacked after that is redelivered to another billing process.
    consumer.stop()
    sweeping.cancel()
    maintaining.cancel()
    storing_contents.cancel()
    done, _ = await asyncio.wait([consuming], timeout=settings.drain_timeout)
    if not done:
        log.error(
            "consumer did not stop within %.0fs; its batch will be redelivered",
            settings.drain_timeout,
        )
        consuming.cancel()
    await asyncio.gather(consuming, sweeping, maintaining, storing_contents, return_exceptions=True)
    await introspection.stopping()
    await server.stop(grace=5)
    ops.should_exit = True
    # The consumer has stopped; anything fetched but unacked is redelivered.
    await nc.close()
    await redis.aclose()
    if read_pool is not None:
        await read_pool.close()
    await pool.close()
    return not failed


def main() -> None:
    settings = BillingSettings()
    parser = argparse.ArgumentParser(prog="unigate-billing")
    add_log_dir_argument(parser)
    args = parser.parse_args()
    configure_logging("billing", settings.log_level, args.log_dir)
    setup_tracing("unigate-billing")
    if not uvloop.run(serve(settings)):
        sys.exit(1)


if __name__ == "__main__":
    main()
