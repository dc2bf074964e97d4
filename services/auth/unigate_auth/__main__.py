"""Entry point: ``unigate-auth`` (or ``python -m unigate_auth``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from importlib.metadata import version as package_version

import uvloop

from unigate import bus
from unigate.alerts import Notifier, Recipients, parse_webhooks
from unigate.db import bound_namespace, create_pool
from unigate.grpc_introspection import Introspection
from unigate.grpcutil import client_channel, listen, new_server
from unigate.health import ChannelHealth
from unigate.heap import freeze_startup_heap
from unigate.logs import add_log_dir_argument, configure_logging
from unigate.mailer import SmtpSettings
from unigate.metrics import circuit_state_hook
from unigate.ops import serve_ops, stop_event
from unigate.quota import QuotaStore
from unigate.redisconn import connect_redis
from unigate.telemetry import setup_tracing
from unigate.v1 import admin_pb2, admin_pb2_grpc, auth_pb2, auth_pb2_grpc, relay_pb2_grpc
from unigate_auth.admin.service import AdminService
from unigate_auth.admin.sessions import LoginThrottle, Sessions, ThrottleLimits
from unigate_auth.backlog import Backlog
from unigate_auth.batch_store import BatchStore
from unigate_auth.billing_client import BillingClient
from unigate_auth.channel_tester import ChannelTester
from unigate_auth.mail_codes import MailCodes, MailLimits
from unigate_auth.message_batches import BatchPoller, MessageBatches
from unigate_auth.oauth.common import Endpoints
from unigate_auth.oauth.flows import OAuthFlows
from unigate_auth.quota_reminder import QuotaReminder
from unigate_auth.service import AuthService
from unigate_auth.settings import AuthSettings
from unigate_auth.store import AuthStore

log = logging.getLogger("unigate_auth")


async def serve(settings: AuthSettings) -> None:
    tls = settings.tls_files("auth")
    pool = await create_pool(settings.sql_dsn, min_size=2, max_size=10)
    # Hot state in Redis is bound to this database (read once: after a restore, restart).
    ns = await bound_namespace(pool, settings.namespace)
    redis = connect_redis(settings.redis_conn_string, max_connections=64)
    nc = await bus.connect(settings.nats_url, "unigate-auth")
    store = AuthStore(pool)
    # Cached balances outlive a Postgres outage this long (stale-if-error, see balances.py).
    quota = QuotaStore(redis, ns, balance_ttl=int(settings.stale_if_error_seconds))
    backlog = Backlog(nc.jetstream(), ns, settings.reload_backlog_wait_seconds)

    async def notify(kind: str, ids: list[int]) -> None:
        await bus.publish_config_change(nc, ns, kind, ids)

    async def recipients() -> Recipients:
        options = await store.options()
        try:
            webhooks = parse_webhooks(options.get("NotificationWebhooks"))
        except ValueError as exc:
            log.error("option NotificationWebhooks ignored: %s", exc)
            webhooks = []
        return Recipients(SmtpSettings.from_options(options), await store.root_emails(), webhooks)

    alerts = Notifier(recipients)
    health = ChannelHealth(redis, ns)
    service = AuthService(settings, store, quota, health, notify, backlog, alerts)
    await bus.subscribe_config_changes(nc, ns, service.on_config_change)
    relay_channels = {f: client_channel(a, tls, "relay") for f, a in settings.relay_map().items()}
    # Redemption codes are claimed by billing (it owns the exactly-once top-up).
    billing_channel = client_channel(settings.billing_addr, tls, "billing")
    background = [
        asyncio.create_task(service.flush_accessed_times()),
        asyncio.create_task(alerts.run()),
    ]
    tester = ChannelTester(
        store,
        {f: relay_pb2_grpc.RelayServiceStub(c) for f, c in relay_channels.items()},
        quota,
        notify,
        alerts,
        frequency_seconds=settings.channel_test_frequency,
        monitor_frequency_seconds=settings.channel_monitor_frequency,
    )
    if settings.channel_test_frequency > 0:
        background.append(asyncio.create_task(tester.run()))
    if settings.channel_monitor_frequency > 0:
        background.append(asyncio.create_task(tester.run_monitor()))
    relay_stubs = {f: relay_pb2_grpc.RelayServiceStub(c) for f, c in relay_channels.items()}
    service.batches = MessageBatches(
        store=BatchStore(pool),
        quota=quota,
        relays=relay_stubs,
        js=nc.jetstream(),
        ns=ns,
        check_key=service.check_key,
        routes=service.routes_for,
        prices=service.batch_pricing,
        reserve=service.reserve_batch,
        channel_row=store.channels.row,
        ceiling=service.output_ceiling,
        default_completion=settings.default_completion_reserve,
    )
    if settings.message_batch_poll > 0:
        poller = BatchPoller(service.batches, quota, settings.message_batch_poll)
        background.append(asyncio.create_task(poller.run()))
    if settings.quota_remind_frequency > 0:
        reminder = QuotaReminder(
            pool, quota, alerts, frequency_seconds=settings.quota_remind_frequency
        )
        background.append(asyncio.create_task(reminder.run()))

    server = new_server(tls)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(service, server)
    admin_service = AdminService(
        pool=pool,
        secret_key=settings.secret_key,
        ns=ns,
        sessions=Sessions(redis, ns, settings.session_ttl_seconds),
        throttle=LoginThrottle(
            redis,
            ns,
            ThrottleLimits(
                per_user=settings.login_max_failures_per_user,
                per_ip=settings.login_max_failures_per_ip,
                window_seconds=settings.login_failure_window_seconds,
                account_slowdown_after=settings.login_account_slowdown_after,
                max_delay_seconds=settings.login_max_delay_seconds,
            ),
        ),
        quota=quota,
        notify=notify,
        tester=tester,
        billing=BillingClient(billing_channel),
        version=package_version("unigate"),
        oauth_flows=OAuthFlows(redis, ns, settings.oauth_max_per_ip_per_minute),
        oauth_endpoints=Endpoints(
            github=settings.oauth_github_url,
            github_api=settings.oauth_github_api_url,
            lark=settings.oauth_lark_url,
            lark_accounts=settings.oauth_lark_accounts_url,
        ),
        codes=MailCodes(
            redis,
            ns,
            settings.secret_key,
            MailLimits(
                code_ttl_seconds=settings.mail_code_ttl_seconds,
                sends_per_address=settings.mail_sends_per_address,
                sends_per_ip=settings.mail_sends_per_ip,
                window_seconds=settings.mail_send_window_seconds,
            ),
        ),
        turnstile_url=settings.turnstile_verify_url,
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(admin_service, server)
    introspection = Introspection(
        server,
        [
            auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
        ],
    )
    listen(server, settings.listen, tls)
    await server.start()
    await introspection.serving()
    freeze_startup_heap()

    async def ready() -> dict[str, bool]:
        checks = {"nats": nc.is_connected}
        try:
            checks["redis"] = bool(await redis.ping())
        except Exception:
            checks["redis"] = False
        try:
            checks["postgres"] = await pool.fetchval("SELECT 1") == 1
        except Exception:
            checks["postgres"] = False
        return checks

    ops = await serve_ops(
        settings.ops_host, settings.ops_port, ready, scrape=[circuit_state_hook(health)]
    )
    log.info("auth listening on %s (ops on :%d)", settings.listen, settings.ops_port)

    stop = stop_event()
    await stop.wait()
    log.info("auth shutting down")
    await introspection.stopping()
    service.drain()
    await server.stop(grace=5)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    for channel in [*relay_channels.values(), billing_channel]:
        await channel.close()
    ops.should_exit = True
    await alerts.aclose()
    await nc.drain()
    await redis.aclose()
    await pool.close()


def main() -> None:
    settings = AuthSettings()
    parser = argparse.ArgumentParser(prog="unigate-auth")
    add_log_dir_argument(parser)
    args = parser.parse_args()
    configure_logging("auth", settings.log_level, args.log_dir)
    setup_tracing("unigate-auth")
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
