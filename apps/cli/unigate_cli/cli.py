"""``unigate``: the admin command line (migrations, channels, keys, ledger), ``unigate dev``."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time
from pathlib import Path

from unigate import certs
from unigate.db import create_pool, install_id, rotate_install_id
from unigate.db.migrate import ensure_database, migrate
from unigate.settings import CommonSettings
from unigate.v1 import admin_pb2, billing_pb2
from unigate_cli import ledger

DEV_ENV_FILE = Path(".env")
# `make dev`'s internal CA and certificates (git-ignored), named in .env as TLS_DIR so the
# CLI run from the repository reaches billing as the operator.
DEV_CERTS_DIR = Path(".certs")


async def _cmd_migrate(settings: CommonSettings, args: argparse.Namespace) -> None:
    if await ensure_database(settings.sql_dsn):
        print("created database")
    applied = await migrate(settings.sql_dsn)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


# Channels, keys and users are auth's: the CLI writes them through its AdminService
# (``AUTH_ADDR``), which takes the operator's ``admin`` certificate for root and broadcasts
# each change. Redemption codes and dead letters are billing's (``BILLING_ADDR``). The CLI
# opens the database itself only for ``migrate`` and ``install``.


async def _cmd_channel_add(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = admin_pb2.ChannelInput(
        type=args.type,
        name=args.name,
        key=args.key,
        models=args.models,
        base_url=args.base_url,
        group=args.group,
        priority=args.priority,
        weight=args.weight,
        model_mapping=args.model_mapping,
        config=args.config,
        system_prompt=args.system_prompt,
    )
    channel = await ledger.call_auth(
        settings, lambda stub: stub.CreateChannel(request, timeout=ledger.RPC_TIMEOUT)
    )
    print(channel.id)


async def _cmd_token_create(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = admin_pb2.TokenInput(
        user_id=await ledger.user_id(settings, args.user),
        name=args.name,
        remain_quota=args.quota,
        unlimited_quota=args.unlimited,
        models=args.models,
        subnet=args.subnet,
    )
    if args.expires_in:
        request.expired_time = int(time.time()) + args.expires_in
    token = await ledger.call_auth(
        settings, lambda stub: stub.CreateToken(request, timeout=ledger.RPC_TIMEOUT)
    )
    print(token.key)


async def _cmd_redemption_create(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = billing_pb2.CreateRedemptionsRequest(
        name=args.name,
        quota=args.quota,
        count=args.count,
        created_by=await ledger.user_id(settings, args.created_by),
    )
    reply = await ledger.call_billing(
        settings, lambda stub: stub.CreateRedemptions(request, timeout=ledger.RPC_TIMEOUT)
    )
    print("\n".join(reply.codes))


async def _cmd_redemption_redeem(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = billing_pb2.RedeemCodeRequest(
        code=args.code, user_id=await ledger.user_id(settings, args.user)
    )
    reply = await ledger.call_billing(
        settings, lambda stub: stub.RedeemCode(request, timeout=ledger.RPC_TIMEOUT)
    )
    print(reply.quota)


async def _cmd_deadletter_list(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = billing_pb2.ListDeadLettersRequest(include_replayed=args.all, limit=args.limit)
    reply = await ledger.call_billing(
        settings, lambda stub: stub.ListDeadLetters(request, timeout=ledger.RPC_TIMEOUT)
    )
    print("id\tcreated_at\treplayed_at\tbytes\tsubject\treason")
    for d in reply.dead_letters:
        replayed = "-" if not d.replayed_at else str(d.replayed_at)
        print(f"{d.id}\t{d.created_at}\t{replayed}\t{d.size}\t{d.subject}\t{d.reason}")


async def _cmd_deadletter_replay(settings: CommonSettings, args: argparse.Namespace) -> None:
    request = billing_pb2.ReplayDeadLettersRequest(id=args.id or 0)
    reply = await ledger.call_billing(
        settings, lambda stub: stub.ReplayDeadLetters(request, timeout=ledger.RPC_TIMEOUT)
    )
    ids = list(reply.ids)
    print(f"replayed {len(ids)} dead letter(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))


async def _cmd_install(settings: CommonSettings, args: argparse.Namespace) -> None:
    pool = await create_pool(settings.sql_dsn, min_size=1, max_size=1)
    try:
        if args.action == "rotate":
            print(await rotate_install_id(pool))
            print("restart auth and billing to use it", file=sys.stderr)
        else:
            print(await install_id(pool))
    finally:
        await pool.close()


def _cmd_certs(args: argparse.Namespace) -> None:
    hostnames = [h.strip() for part in args.hostname for h in part.split(",") if h.strip()]
    if args.drop_old_ca:
        print(certs.drop_old_cas(args.out))
        return
    identities = args.identity or list(certs.IDENTITIES)
    if args.if_missing and certs.has_certificates(args.out, identities):
        print(f"{args.out}: certificates present, nothing written")
        return
    written = certs.write_certificates(
        args.out, identities, hostnames, days=args.days, new_ca_too=args.new_ca
    )
    for path in written:
        print(path)


def _dev_env_file() -> None:
    """.env with a SECRET_KEY and TLS_DIR, added to what is there."""
    text = DEV_ENV_FILE.read_text() if DEV_ENV_FILE.exists() else ""
    lines = text.splitlines()
    if not any(line.startswith("SECRET_KEY=") for line in lines):
        lines.append(f"SECRET_KEY={secrets.token_urlsafe(32)}")
        print(f"wrote a new SECRET_KEY to {DEV_ENV_FILE}")
    if not any(line.startswith("TLS_DIR=") for line in lines):
        lines.append(f"TLS_DIR={DEV_CERTS_DIR.resolve()}")
    DEV_ENV_FILE.write_text("\n".join(lines) + "\n")


def _cmd_dev(args: argparse.Namespace) -> None:
    from unigate_cli.devstack import Stack, StackConfig

    _dev_env_file()
    settings = CommonSettings(_env_file=DEV_ENV_FILE)
    asyncio.run(_cmd_migrate(settings, args))
    stack = Stack(
        StackConfig(
            sql_dsn=settings.sql_dsn,
            namespace=settings.namespace,
            secret_key=settings.secret_key,
            redis_url=settings.redis_conn_string,
            nats_url=settings.nats_url,
            internal_tls=settings.internal_tls,
            tls_dir=Path(settings.tls_dir) if settings.tls_dir else None,
        )
    )
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        p = stack.config.ports
        print(
            "\nunigate is running:\n"
            f"  gateway (OpenAI-compatible API)  {stack.gateway_url}/v1\n"
            f"  auth gRPC                        127.0.0.1:{p.auth}   (ops :{p.auth_ops})\n"
            f"  relay gRPC [openai]              127.0.0.1:{p.relay}  (ops :{p.relay_ops})\n"
            f"  billing gRPC                     127.0.0.1:{p.billing}  (ops :{p.billing_ops})\n"
            f"  internal mTLS certificates       {stack.config.tls_dir or 'OFF (INTERNAL_TLS)'}\n"
            f"  OpenAI simulator (fake upstream) {stack.simulator_url}"
            f"  key {stack.config.simulator_key}\n"
            "Create a channel and a key as README.md shows. Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stop:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    stop = True
            time.sleep(0.5)
    finally:
        stack.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unigate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create the database if needed and apply migrations")
    sub.add_parser("dev", help="migrate and run the whole stack locally (foreground)")
    cert = sub.add_parser(
        "certs",
        help="make the internal CA (unless OUT has one) and a certificate per service identity;"
        " run again to rotate the certificates",
    )
    cert.add_argument("--out", required=True, type=Path, help="directory to write the files to")
    cert.add_argument(
        "--hostname",
        action="append",
        default=[],
        help="extra DNS name or IP for every certificate (repeatable or comma-separated);"
        " localhost, 127.0.0.1 and the identity's own name are always in",
    )
    cert.add_argument(
        "--identity",
        action="append",
        choices=certs.IDENTITIES,
        help="only this identity (repeatable); default: all",
    )
    cert.add_argument("--days", type=int, default=365, help="validity of the certificates")
    cert.add_argument(
        "--new-ca", action="store_true", help="replace the CA too (every certificate must follow)"
    )
    cert.add_argument(
        "--drop-old-ca",
        action="store_true",
        help="only trust the current CA from now on (after --new-ca, once every process has"
        " the new files); writes nothing else",
    )
    cert.add_argument(
        "--if-missing",
        action="store_true",
        help="write nothing if the CA and every certificate asked for are there (a deploy job)",
    )

    channel = sub.add_parser("channel", help="manage channels").add_subparsers(
        dest="action", required=True
    )
    add = channel.add_parser("add", help="add a channel; prints its id")
    add.add_argument(
        "--type", type=int, default=1, help="channel type (1 OpenAI, 3 Azure, 8 compatible)"
    )
    add.add_argument("--name", required=True)
    add.add_argument("--key", required=True, help="provider key(s), one per line")
    add.add_argument("--models", required=True, help="comma-separated model names")
    add.add_argument("--base-url", default="", help="e.g. https://api.openai.com")
    add.add_argument("--group", default="default", help="comma-separated groups served")
    add.add_argument("--priority", type=int, default=0)
    add.add_argument("--weight", type=int, default=1)
    add.add_argument(
        "--system-prompt", default="", help="instructions put before every conversation"
    )
    add.add_argument("--model-mapping", default="", help='JSON, e.g. {"gpt-4o":"gpt-4o-2024"}')
    add.add_argument(
        "--config", default="", help='per-type settings, JSON, e.g. {"api_version":"2024-10-21"}'
    )

    token = sub.add_parser("token", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="create an API key; prints it (shown only once)")
    create.add_argument("--user", default="root")
    create.add_argument("--name", default="default")
    create.add_argument("--quota", type=int, default=0, help="quota units (500000 = 1 USD)")
    create.add_argument("--unlimited", action="store_true")
    create.add_argument("--expires-in", type=int, default=0, help="seconds; 0 = never")
    create.add_argument("--models", default="", help="allowlist; empty = all")
    create.add_argument("--subnet", default="", help="allowed CIDRs; empty = any")
    ledger.add_token_quota(token)

    redemption = sub.add_parser("redemption", help="redemption codes (top-ups)").add_subparsers(
        dest="action", required=True
    )
    mint = redemption.add_parser("create", help="create codes; prints them, one per line")
    mint.add_argument("--name", required=True, help="a label for this batch (1-20 characters)")
    mint.add_argument("--quota", type=int, required=True, help="quota units each code adds")
    mint.add_argument("--count", type=int, default=1, help="how many codes (1-100)")
    mint.add_argument("--created-by", default="root", help="the admin user minting them")
    use = redemption.add_parser("redeem", help="redeem a code for a user; prints quota added")
    use.add_argument("--user", default="root")
    use.add_argument("code")

    deadletter = sub.add_parser(
        "deadletter", help="usage data billing could not apply"
    ).add_subparsers(dest="action", required=True)
    listing = deadletter.add_parser("list", help="list dead letters not replayed yet")
    listing.add_argument("--all", action="store_true", help="include replayed ones")
    listing.add_argument("--limit", type=int, default=100)
    again = deadletter.add_parser(
        "replay", help="republish dead letters to the usage stream and mark them replayed"
    )
    again.add_argument(
        "--id", type=int, default=None, help="only this one (even if replayed before)"
    )
    install = sub.add_parser(
        "install", help="this database's identity, which Redis keys of hot state carry"
    ).add_subparsers(dest="action", required=True)
    install.add_parser("show", help="print it")
    install.add_parser(
        "rotate", help="give the database a new one (after restoring a physical backup)"
    )
    ledger.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        _cmd_dev(args)
        return
    if args.command == "certs":
        _cmd_certs(args)
        return
    settings = ledger.CliSettings(_env_file=DEV_ENV_FILE if DEV_ENV_FILE.exists() else None)
    handlers = {
        ("migrate", None): _cmd_migrate,
        ("channel", "add"): _cmd_channel_add,
        ("token", "create"): _cmd_token_create,
        ("redemption", "create"): _cmd_redemption_create,
        ("redemption", "redeem"): _cmd_redemption_redeem,
        ("deadletter", "list"): _cmd_deadletter_list,
        ("deadletter", "replay"): _cmd_deadletter_replay,
        ("install", "show"): _cmd_install,
        ("install", "rotate"): _cmd_install,
        **ledger.HANDLERS,
    }
    handler = handlers[(args.command, getattr(args, "action", None))]
    try:
        asyncio.run(handler(settings, args))
    except ledger.CliError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
