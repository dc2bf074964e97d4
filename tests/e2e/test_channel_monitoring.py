"""Channel monitoring on a stack of its own (own database and namespace: its periodic tests
touch every enabled channel, so they must not reach the session's): the periodic test
disables a failing or slow channel and re-enables it once it recovers, telling root by mail
(a real SMTP server) and a webhook receiver each time; one bad key of a three-key channel is
cooled down and disabled while the other two keep serving."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import openai
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests import admin_writes
from tests.conftest import NATS_URL, PG_ADMIN_DSN
from tests.e2e.conftest import ThreadedServer
from tests.e2e.test_management_api import ROOT_PASSWORD, Api
from tests.smtp_inbox import Inbox, smtp_inbox
from unigate.db.migrate import ensure_database, migrate
from unigate.keys import key_fingerprint, mask_key
from unigate_cli.devstack import Stack, StackConfig, StackPorts
from unigate_sim.openai import Fault, create_app

ROOT_EMAIL = "root@unigate.test"
DINGTALK_SECRET = "SEC" + "d" * 40
GENERIC_SECRET = "generic-secret"
MODEL = "gpt-4o-mini"
PERIOD = 2  # seconds between periodic tests (both kinds)


class Receiver:
    """Webhook receiver: a generic endpoint that checks unigate's signature and a DingTalk
    robot that checks DingTalk's (refusing a bad one as DingTalk does, with an errcode)."""

    def __init__(self) -> None:
        self.generic: list[dict[str, Any]] = []
        self.dingtalk: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()

    async def on_generic(self, request: Request) -> Response:
        raw = await request.body()
        ts = request.headers.get("x-unigate-timestamp", "")
        want = hmac.new(GENERIC_SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256)
        if request.headers.get("x-unigate-signature") != "sha256=" + want.hexdigest():
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        with self._lock:
            self.generic.append(orjson.loads(raw))
        return Response(status_code=204)

    async def on_dingtalk(self, request: Request) -> Response:
        ts = request.query_params.get("timestamp", "")
        string_to_sign = f"{ts}\n{DINGTALK_SECRET}".encode()
        sign = base64.b64encode(
            hmac.new(DINGTALK_SECRET.encode(), string_to_sign, hashlib.sha256).digest()
        ).decode()
        fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3_600_000
        if not fresh or request.query_params.get("sign") != sign:
            self.refused += 1
            return JSONResponse({"errcode": 310000, "errmsg": "sign not match"})
        body = await request.json()
        if body.get("msgtype") != "text" or not body.get("text", {}).get("content"):
            return JSONResponse({"errcode": 40035, "errmsg": "missing param"})
        with self._lock:
            self.dingtalk.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.on_generic, methods=["POST"]),
                Route("/robot/send", self.on_dingtalk, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, ThreadedServer]]:
    rec = Receiver()
    server = ThreadedServer(rec.app())
    server.start()
    yield rec, server
    server.stop()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as box:
        yield box


@pytest.fixture(scope="module")
def provider() -> Iterator[ThreadedServer]:
    server = ThreadedServer(create_app({"sk-good-1" + "a" * 30, "sk-good-2" + "b" * 30}))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_faults_left(provider: ThreadedServer) -> Iterator[None]:
    """A test that stops half-way leaves no injected faults to the next."""
    yield
    provider.server.config.app.state.faults.clear()


@pytest.fixture(scope="module")
async def own_db(namespace: str) -> AsyncIterator[tuple[str, str]]:
    ns = namespace + "mon"
    url = urlsplit(PG_ADMIN_DSN)
    dsn = urlunsplit(url._replace(path=f"/unigate_{ns}"))
    await ensure_database(dsn)
    await migrate(dsn, root_password="test-root-password")
    yield dsn, ns
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "unigate_{ns}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def mon_pg(own_db: tuple[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(own_db[0], min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def mon_stack(
    own_db: tuple[str, str],
    mon_pg: asyncpg.Pool,
    secret_key: str,
    log_dir: Path,
    redis: Redis,
    inbox: Inbox,
    receiver: tuple[Receiver, ThreadedServer],
) -> AsyncIterator[Stack]:
    dsn, ns = own_db
    hooks = [
        {"type": "generic", "url": receiver[1].url + "/hook", "secret": GENERIC_SECRET},
        {
            "type": "dingtalk",
            "url": receiver[1].url + "/robot/send?access_token=tok",
            "secret": DINGTALK_SECRET,
        },
    ]
    options = {
        **inbox.options(),
        "NotificationWebhooks": orjson.dumps(hooks).decode(),
        "ChannelDisableThreshold": "3",
    }
    for key, value in options.items():
        await mon_pg.execute(
            "INSERT INTO options (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = $2",
            key,
            value,
        )
    await mon_pg.execute("UPDATE users SET email = $1 WHERE role >= 100", ROOT_EMAIL)
    stack = Stack(
        StackConfig(
            sql_dsn=dsn,
            namespace=ns,
            secret_key=secret_key,
            ports=StackPorts.free(),
            simulator=None,
            log_dir=log_dir / "monitoring",
            extra_env={
                "CHANNEL_TEST_FREQUENCY": str(PERIOD),
                "CHANNEL_MONITOR_FREQUENCY": str(PERIOD),
                "QUOTA_REMIND_FREQUENCY": str(PERIOD),
            },
        )
    )
    try:
        await asyncio.to_thread(stack.start, 60.0)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)
        nc = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(f"{ns.upper()}_USAGE")
        finally:
            await nc.close()
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*", count=1000)]
        if keys:
            await redis.delete(*keys)


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 40
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r}"
        await asyncio.sleep(0.2)


def mails_about(inbox: Inbox, since: int, words: str) -> list[str]:
    """Subjects of the mails that arrived after the first ``since`` and contain ``words``."""
    return [str(m["Subject"]) for m in inbox.messages[since:] if words in str(m["Subject"])]


async def test_failing_then_slow_channel_is_disabled_and_recovers_with_notifications(
    mon_stack: Stack,
    mon_pg: asyncpg.Pool,
    secret_key: str,
    provider: ThreadedServer,
    inbox: Inbox,
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    rec = receiver[0]
    sim: Starlette = provider.server.config.app
    channel_id = await admin_writes.create_channel(
        mon_pg,
        secret_key=secret_key,
        type=1,
        name="monitored",
        key="sk-good-1" + "a" * 30,
        base_url=provider.url,
        models=MODEL,
    )
    row = lambda: mon_pg.fetchrow(  # noqa: E731
        "SELECT status, status_reason, test_time, response_time, test_error FROM channels"
        " WHERE id = $1",
        channel_id,
    )
    # Healthy: a periodic test passes and says so on the row (a cold first call on a loaded
    # machine may be slower than the threshold: the retest then re-enables it).
    await eventually(
        row, lambda r: r["test_time"] > 0 and r["status"] == 1 and r["test_error"] == ""
    )
    mails, generic, dingtalk = len(inbox.messages), len(rec.generic), len(rec.dingtalk)

    def hooks(event: str) -> list[dict[str, Any]]:
        return [h for h in rec.generic[generic:] if h["event"] == event]

    # The provider starts failing: disabled within about one period, root and hooks told.
    sim.state.faults.extend(
        [Fault(status=500, body={"error": {"message": "boom", "type": "server_error"}})] * 500
    )
    failed = await eventually(row, lambda r: r["status"] == 3)
    assert "periodic test failed" in failed["status_reason"]
    assert failed["test_error"]
    await eventually(
        lambda: asyncio.sleep(0, mails_about(inbox, mails, "disabled")), lambda m: len(m) >= 1
    )
    subjects = mails_about(inbox, mails, "disabled")
    assert any(f"Channel #{channel_id} (monitored) disabled" in m for m in subjects), subjects
    await eventually(lambda: asyncio.sleep(0, hooks("channel_disabled")), bool)
    assert hooks("channel_disabled")[0]["details"]["channel_id"] == channel_id

    def ding(word: str) -> list[str]:
        told = [m["text"]["content"] for m in rec.dingtalk[dingtalk:]]
        return [m for m in told if word in m]

    await eventually(lambda: asyncio.sleep(0, ding("disabled")), bool)

    # It recovers: the retest re-enables it, and both are told (counted from here on).
    mails, generic, dingtalk = len(inbox.messages), len(rec.generic), len(rec.dingtalk)
    sim.state.faults.clear()
    await eventually(row, lambda r: r["status"] == 1)
    await eventually(
        lambda: asyncio.sleep(0, mails_about(inbox, mails, "re-enabled")), lambda m: len(m) >= 1
    )
    await eventually(lambda: asyncio.sleep(0, hooks("channel_enabled")), bool)
    await eventually(lambda: asyncio.sleep(0, ding("re-enabled")), bool)

    # Slower than the 3-s threshold: disabled again by the periodic test.
    sim.state.faults.extend([Fault(delay=7.0)] * 500)
    slow = await eventually(row, lambda r: r["status"] == 3, within=90)
    assert "threshold" in slow["status_reason"]
    assert slow["response_time"] >= 3000
    await eventually(
        lambda: asyncio.sleep(0, mails_about(inbox, mails, "disabled")), lambda m: len(m) >= 1
    )
    sim.state.faults.clear()
    await eventually(row, lambda r: r["status"] == 1, within=90)
    assert rec.refused == 0  # every signature was right


async def test_one_bad_key_of_three_is_disabled_and_the_others_keep_serving(
    mon_stack: Stack,
    mon_pg: asyncpg.Pool,
    secret_key: str,
    provider: ThreadedServer,
) -> None:
    sim: Starlette = provider.server.config.app
    # No response-time limit here: a slow cold call must not disable the channel.
    await mon_pg.execute("UPDATE options SET value = '0' WHERE key = 'ChannelDisableThreshold'")
    good = ["sk-good-1" + "a" * 30, "sk-good-2" + "b" * 30]
    bad = "sk-revoked-" + "c" * 30
    model = "gpt-4o"
    channel_id = await admin_writes.create_channel(
        mon_pg,
        secret_key=secret_key,
        type=1,
        name="three keys",
        key="\n".join([good[0], bad, good[1]]),
        base_url=provider.url,
        models=model,
    )
    token = await admin_writes.create_token(mon_pg, user_id=1, name="t", unlimited_quota=True)
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=mon_stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    outcomes: list[bool] = []
    for _ in range(6):
        try:
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hello"}]
            )
            outcomes.append(True)
        except openai.APIStatusError:
            outcomes.append(False)
    # The relay tries the next key when one is refused: no client ever sees the bad key.
    assert outcomes == [True] * 6

    state = await eventually(
        lambda: mon_pg.fetchrow(
            "SELECT status, key_status::text AS ks FROM channels WHERE id = $1", channel_id
        ),
        lambda r: key_fingerprint(bad) in orjson.loads(r["ks"]),
    )
    assert state["status"] == 1  # the channel stays enabled
    keys = orjson.loads(state["ks"])
    assert set(keys) == {key_fingerprint(bad)}
    assert bad not in state["ks"]
    assert "upstream_auth_failed" in keys[key_fingerprint(bad)]["reason"]

    # From now on only the two good keys are used, and every request succeeds.
    before = len(sim.state.calls)
    for _ in range(6):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
    # (the simulator records only the calls it authenticated, the good keys'; the periodic
    # tests add theirs)
    assert len(sim.state.calls) - before >= 6
    assert await mon_pg.fetchval("SELECT status FROM channels WHERE id = $1", channel_id) == 1

    # The console's view: each key masked with its state; an admin puts the key back.
    api = Api(mon_stack)
    try:
        assert (await api.login("root", ROOT_PASSWORD)).status_code == 200
        raw = await api.raw("GET", f"/channel/{channel_id}")
        assert bad not in raw.text and good[0] not in raw.text
        assert raw.json()["data"], raw.text
        shown = {k["masked"]: k for k in raw.json()["data"]["keys"]}
        assert shown[mask_key(bad)]["status"] == 3
        assert "upstream_auth_failed" in shown[mask_key(bad)]["reason"]
        assert [shown[mask_key(g)]["status"] for g in good] == [1, 1]
        fp = shown[mask_key(bad)]["fingerprint"]
        again = await api.ok("POST", f"/channel/{channel_id}/key/{fp}/enable")
        assert [k["status"] for k in again["keys"]] == [1, 1, 1]
        # Refusals in One API's convention: HTTP 200, success false, a message.
        missing = await api.raw("POST", f"/channel/{channel_id}/key/{'0' * 16}/enable")
        assert missing.status_code == 200 and missing.json()["success"] is False, missing.text
        assert missing.json()["message"]
        malformed = await api.raw("POST", f"/channel/{channel_id}/key/not-a-fingerprint/enable")
        assert malformed.status_code == 200 and malformed.json()["success"] is False
        assert malformed.json()["message"]
    finally:
        await api.close()
    assert (
        await mon_pg.fetchval("SELECT key_status::text FROM channels WHERE id = $1", channel_id)
        == "{}"
    )

    # The bad key in rotation again: streams refused for it at once are opened again with
    # the next key, so every stream still succeeds.
    for _ in range(6):
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Echo: hello"


async def test_a_user_falling_below_the_remind_threshold_is_told_once(
    mon_stack: Stack,
    mon_pg: asyncpg.Pool,
    secret_key: str,
    provider: ThreadedServer,
    inbox: Inbox,
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    rec = receiver[0]
    model = "reminder-model"
    await admin_writes.create_channel(
        mon_pg,
        secret_key=secret_key,
        type=1,
        name="for reminders",
        key="sk-good-2" + "b" * 30,
        base_url=provider.url,
        models=model,
        model_mapping={model: "gpt-4o-mini"},
    )
    start = 1_000_000
    email = "spender@unigate.test"
    user_id = await admin_writes.create_user(
        mon_pg, username="spender", password="spender-password", quota=start
    )
    await mon_pg.execute("UPDATE users SET email = $2 WHERE id = $1", user_id, email)
    token = await admin_writes.create_token(
        mon_pg, user_id=user_id, name="t", remain_quota=start, unlimited_quota=False
    )
    await mon_pg.execute(
        "INSERT INTO options (key, value) VALUES ('QuotaRemindThreshold', $1)"
        " ON CONFLICT (key) DO UPDATE SET value = $1",
        str(start - 1),  # any charge crosses it
    )
    mails, generic = len(inbox.messages), len(rec.generic)
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=mon_stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    # Billing charges it; the next sweep tells the user, root and the webhook.
    mail = await asyncio.to_thread(inbox.wait_for, email, 60)
    assert "Low balance: spender" in str(mail["Subject"])
    await eventually(
        lambda: asyncio.sleep(0, mails_about(inbox, mails, "Low balance")), lambda m: len(m) >= 2
    )
    hooks = await eventually(
        lambda: asyncio.sleep(0, [h for h in rec.generic[generic:] if h["event"] == "quota_low"]),
        bool,
    )
    assert hooks[0]["details"]["user_id"] == user_id
    assert hooks[0]["details"]["quota"] < start
    # Told once: later sweeps leave it be while the balance stays low.
    await asyncio.sleep(3 * PERIOD)
    assert len(mails_about(inbox, mails, "Low balance")) == 2  # the user and root, once
    # A top-up above the threshold re-arms it.
    await mon_pg.execute("UPDATE users SET quota = $2 WHERE id = $1", user_id, start * 2)
    await eventually(
        lambda: mon_pg.fetchval("SELECT quota_reminded_at FROM users WHERE id = $1", user_id),
        lambda at: at == 0,
    )


async def test_webhook_option_is_checked_when_set(mon_stack: Stack, mon_pg: asyncpg.Pool) -> None:
    before = await mon_pg.fetchval("SELECT value FROM options WHERE key = 'NotificationWebhooks'")
    api = Api(mon_stack)
    try:
        assert (await api.login("root", ROOT_PASSWORD)).status_code == 200
        for bad in ('[{"type": "teams", "url": "https://x.test"}]', "not json"):
            r = await api.raw("PUT", "/option/", json={"key": "NotificationWebhooks", "value": bad})
            # One API's convention: a refusal is HTTP 200 with success false.
            assert r.status_code == 200 and r.json()["success"] is False, r.text
        good = '[{"type": "slack", "url": "https://hooks.slack.test/services/x"}]'
        await api.ok("PUT", "/option/", json={"key": "NotificationWebhooks", "value": good})
    finally:
        # The module's own hooks again (other tests here read them).
        await mon_pg.execute(
            "UPDATE options SET value = $1 WHERE key = 'NotificationWebhooks'", before
        )
        await api.close()
