"""The read side of the ledger (billing's ListLogs, ExportLogs and UsageStats, and the CLI on
top of them) and admin quota adjustments, against a stack of its own.

Two users, each with a key, call two models served by two channels through the gateway; a few
thousand more usage events dated over the three previous UTC days are published straight to
the usage stream, so that day boundaries, partial days and a multi-chunk export are exercised.
Every answer is checked against the ``logs`` table itself.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import openai
import pytest

from tests import admin_writes
from tests.e2e.test_parallel_billing import MODEL, LedgerEnv, ledger_env, run_cli, wait_drained
from unigate import bus
from unigate.quota import QuotaStore
from unigate.v1 import billing_pb2, billing_pb2_grpc, common_pb2, events_pb2

MODEL_B = "gpt-4o"
# A key name that needs CSV quoting: a comma, a quote and a line break.
TRICKY_NAME = 'alice, "main"\nkey'
SYNTHETIC = 2500  # more than one export chunk (logexport.CHUNK_ROWS = 2000)
DAY = 86400


@dataclass
class World:
    env: LedgerEnv
    stub: billing_pb2_grpc.BillingServiceStub
    t0: int  # before the first real call
    users: dict[str, int]  # username -> id
    tokens: dict[str, int]  # username -> token id
    channels: dict[str, int]  # model -> channel id
    calls: dict[str, list[str]]  # username -> ledger request ids of its real calls
    by_model: dict[str, list[str]]  # model -> ledger request ids of real calls
    base: int  # 00:00 UTC three days ago: where the synthetic events start


async def _call(key: str, base_url: str, model: str, stream: bool) -> str:
    """One chat completion; returns the ledger's request id for it."""
    async with openai.AsyncOpenAI(
        api_key=key, base_url=base_url, max_retries=0, timeout=60
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": f"ledger query {uuid.uuid4().hex}"}],
            stream=stream,
        )
        if stream:
            assert [c async for c in raw.parse()]  # type: ignore[union-attr]
        else:
            assert raw.parse().choices[0].message.content  # type: ignore[union-attr]
        return raw.headers["x-request-id"]


async def _publish_synthetic(w: World) -> None:
    users = list(w.users)
    events = []
    for i in range(SYNTHETIC):
        name = users[i % 2]
        model = (MODEL, MODEL_B)[i % 3 == 0]
        events.append(
            events_pb2.UsageEvent(
                schema_version=1,
                request_id=f"synthetic-{w.env.ns.name}-{i}",
                user_id=w.users[name],
                token_id=w.tokens[name],
                token_name=TRICKY_NAME if name == users[0] else "bob-key",
                channel_id=w.channels[model],
                model=model,
                upstream_model=model,
                endpoint="/v1/chat/completions",
                usage=common_pb2.Usage(prompt_tokens=i % 11, completion_tokens=i % 13),
                quota=i % 7 + 1,
                status_code=200,
                created_at_ms=(w.base + i * 100) * 1000,  # spans three UTC days
                group="default",
            )
        )
    for i in range(0, len(events), 250):
        data = events_pb2.UsageBatch(events=events[i : i + 250]).SerializeToString()
        await w.env.js.publish(
            w.env.ns.usage_subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex}
        )


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with ledger_env(tmp_path_factory.mktemp("ledger-queries")) as env:
        channel_b = await admin_writes.create_channel(
            env.pg,
            secret_key=env.stack.config.secret_key,
            type=1,
            name="simulator-b",
            key=env.stack.config.simulator_key,
            base_url=env.stack.simulator_url,
            models=MODEL_B,
        )
        await bus.publish_config_change(env.nc, env.ns, "channel", [channel_b])
        users, tokens, keys = {}, {}, {}
        for name, token_name, unlimited in (
            ("alice", TRICKY_NAME, False),
            ("bob", "bob-key", True),
        ):
            users[name] = await admin_writes.create_user(
                env.pg, username=name, password="a-long-password", quota=10**10
            )
            token = await admin_writes.create_token(
                env.pg,
                user_id=users[name],
                name=token_name,
                remain_quota=10**9,
                unlimited_quota=unlimited,
            )
            tokens[name], keys[name] = token.id, token.key
        channel = env.stack.client_channel("billing", "admin")
        w = World(
            env=env,
            stub=billing_pb2_grpc.BillingServiceStub(channel),
            t0=int(time.time()),
            users=users,
            tokens=tokens,
            channels={MODEL: env.channel_id, MODEL_B: channel_b},
            calls=defaultdict(list),
            by_model=defaultdict(list),
            base=(int(time.time()) // DAY - 3) * DAY,
        )
        plan = [("alice", MODEL, False)] * 3 + [("alice", MODEL_B, False), ("alice", MODEL_B, True)]
        plan += [("bob", MODEL, True), ("bob", MODEL_B, False), ("bob", MODEL_B, False)]
        for name, model, stream in plan:
            rid = await _call(keys[name], env.base_url, model, stream)
            w.calls[name].append(rid)
            w.by_model[model].append(rid)
        await _publish_synthetic(w)
        await wait_drained(env)
        try:
            yield w
        finally:
            await channel.close()


def _filter(**kw: object) -> billing_pb2.LogFilter:
    return billing_pb2.LogFilter(**kw)  # type: ignore[arg-type]


async def _ids(w: World, f: billing_pb2.LogFilter) -> tuple[set[str], int]:
    resp = await w.stub.ListLogs(billing_pb2.ListLogsRequest(filter=f, page_size=1000))
    assert len(resp.logs) == resp.total <= 1000
    return {e.request_id for e in resp.logs}, resp.total


async def test_every_filter_selects_exactly_the_matching_rows(world: World) -> None:
    w = world
    alice, bob = set(w.calls["alice"]), set(w.calls["bob"])
    recent = {"start_timestamp": w.t0}
    for f, expected in (
        (_filter(user_id=w.users["alice"], **recent), alice),
        (_filter(username="bob", **recent), bob),
        (_filter(token_id=w.tokens["alice"], **recent), alice),
        (_filter(token_name=TRICKY_NAME, **recent), alice),
        (_filter(model_name=MODEL_B, **recent), set(w.by_model[MODEL_B])),
        (_filter(channel_id=w.channels[MODEL], **recent), set(w.by_model[MODEL])),
        (
            _filter(channel_id=w.channels[MODEL], username="alice", **recent),
            alice & set(w.by_model[MODEL]),
        ),
        (_filter(type=2, **recent), alice | bob),
        (_filter(type=1, **recent), set()),
        (_filter(username="nobody"), set()),
    ):
        ids, total = await _ids(w, f)
        assert (ids, total) == (expected, len(expected)), f

    # One row by its request id, with what the gateway and auth put in it.
    rid = w.calls["alice"][-1]
    resp = await w.stub.ListLogs(billing_pb2.ListLogsRequest(filter=_filter(request_id=rid)))
    [entry] = resp.logs
    assert (entry.request_id, entry.type, entry.username, entry.token_name) == (
        rid,
        2,
        "alice",
        TRICKY_NAME,
    )
    assert (entry.model, entry.channel_id, entry.stream) == (MODEL_B, w.channels[MODEL_B], True)
    assert entry.quota > 0 and entry.prompt_tokens > 0 and entry.created_at >= w.t0

    # A time range: against the ledger's own timestamps of the synthetic rows.
    lo, hi = w.base + DAY - 500, w.base + DAY + 499  # 10 synthetic rows, 100 s apart
    ids, total = await _ids(w, _filter(start_timestamp=lo, end_timestamp=hi))
    expected_rows = await w.env.pg.fetch(
        "SELECT request_id FROM logs WHERE created_at BETWEEN $1 AND $2", lo, hi
    )
    assert total == len(expected_rows) == 10
    assert ids == {r["request_id"] for r in expected_rows}


async def test_pages_cover_every_row_once_newest_first(world: World) -> None:
    w = world
    # Newest first is by time, then id (the synthetic rows are older than their ids say).
    newest_first = [
        r["id"]
        for r in await w.env.pg.fetch(
            "SELECT id FROM logs WHERE type = 2 ORDER BY created_at DESC, id DESC"
        )
    ]
    all_consume = set(newest_first)
    assert len(all_consume) == SYNTHETIC + 8
    seen: list[int] = []
    for page in range(3):
        resp = await w.stub.ListLogs(
            billing_pb2.ListLogsRequest(filter=_filter(type=2), page=page, page_size=1000)
        )
        assert resp.total == len(all_consume) and (resp.page, resp.page_size) == (page, 1000)
        assert len(resp.logs) == min(1000, len(all_consume) - page * 1000)
        seen += [e.id for e in resp.logs]
    assert seen == newest_first

    past_end = await w.stub.ListLogs(
        billing_pb2.ListLogsRequest(filter=_filter(type=2), page=50, page_size=100)
    )
    assert (len(past_end.logs), past_end.total) == (0, len(all_consume))
    capped = await w.stub.ListLogs(billing_pb2.ListLogsRequest(page_size=10**6))
    assert capped.page_size == len(capped.logs) == 1000

    for bad in (
        billing_pb2.ListLogsRequest(filter=_filter(type=9)),
        billing_pb2.ListLogsRequest(filter=_filter(start_timestamp=10, end_timestamp=5)),
        billing_pb2.ListLogsRequest(page=-1),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await w.stub.ListLogs(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _export(w: World, f: billing_pb2.LogFilter) -> list[bytes]:
    return [c.data async for c in w.stub.ExportLogs(billing_pb2.ExportLogsRequest(filter=f))]


async def test_csv_export_streams_every_row_in_chunks_and_parses_back(world: World) -> None:
    w = world
    chunks = await _export(w, _filter(type=2))
    # Streamed, not built whole: several messages, each ending on a row boundary.
    assert len(chunks) >= 2 and all(c.endswith(b"\r\n") for c in chunks)
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode(), newline="")))
    truth = await w.env.pg.fetch(
        "SELECT request_id, quota, prompt_tokens, completion_tokens, token_name FROM logs"
        " WHERE type = 2"
    )
    assert len(rows) == len(truth) == SYNTHETIC + 8
    assert {r["request_id"] for r in rows} == {t["request_id"] for t in truth}
    for column in ("quota", "prompt_tokens", "completion_tokens"):
        assert sum(int(r[column]) for r in rows) == sum(t[column] for t in truth), column
    # Quoting survived the round trip: the name with a comma, a quote and a newline.
    by_id = {r["request_id"]: r for r in rows}
    assert by_id[w.calls["alice"][0]]["token_name"] == TRICKY_NAME
    assert by_id[w.calls["bob"][0]]["stream"] == "1"
    assert list(rows[0])[:4] == ["id", "created_at", "time", "type"]

    # Same filters as the list: bob's rows only.
    bob = list(
        csv.DictReader(
            io.StringIO(b"".join(await _export(w, _filter(username="bob"))).decode(), newline="")
        )
    )
    listed = await w.stub.ListLogs(billing_pb2.ListLogsRequest(filter=_filter(username="bob")))
    assert len(bob) == listed.total > 0 and {r["username"] for r in bob} == {"bob"}
    # Nothing matches: still a header, so the file is a valid empty table.
    [empty] = await _export(w, _filter(request_id="no-such-request"))
    assert empty.startswith(b"id,created_at,time,type,") and empty.count(b"\r\n") == 1


def _expected_stats(
    rows: list[asyncpg.Record], start: int, end: int, by_day: bool, by_model: bool
) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if (start and r["created_at"] < start) or (end and r["created_at"] > end):
            continue
        day = dt.datetime.fromtimestamp(r["created_at"], dt.UTC).date().isoformat()
        s = sums[(day if by_day else "", r["model_name"] if by_model else "")]
        s[0] += 1
        s[1] += r["prompt_tokens"]
        s[2] += r["completion_tokens"]
        s[3] += r["quota"]
    return {k: (v[0], v[1], v[2], v[3]) for k, v in sums.items()}


async def test_stats_by_day_and_model_equal_sums_over_the_rows(world: World) -> None:
    w = world
    b = w.base
    ranges = [
        (0, 0),  # everything
        (b + 5000, b + 2 * DAY + 7000),  # starts and ends inside a day
        (b + 100, b + 50000),  # inside one day
        (b + DAY, b + 2 * DAY - 1),  # exactly one whole day (rollups only)
        (b + DAY - 1, b + 2 * DAY),  # a whole day plus one second each side
        (b + DAY + 1, 0),  # open end
        (0, b + DAY + 3333),  # open start
    ]
    filters: list[tuple[dict[str, object], str, object]] = [
        ({}, "", None),
        ({"username": "alice"}, "user_id", w.users["alice"]),
        ({"user_id": w.users["bob"]}, "user_id", w.users["bob"]),
        ({"token_name": TRICKY_NAME}, "token_id", w.tokens["alice"]),
        ({"token_id": w.tokens["bob"]}, "token_id", w.tokens["bob"]),
        ({"model_name": MODEL_B}, "model_name", MODEL_B),
        ({"channel_id": w.channels[MODEL]}, "channel_id", w.channels[MODEL]),
    ]
    all_rows = await w.env.pg.fetch(
        "SELECT created_at, user_id, token_id, channel_id, model_name, prompt_tokens,"
        " completion_tokens, quota FROM logs WHERE type = 2"
    )
    groupings = {
        billing_pb2.STATS_GROUP_BY_NONE: (False, False),
        billing_pb2.STATS_GROUP_BY_DAY: (True, False),
        billing_pb2.STATS_GROUP_BY_MODEL: (False, True),
        billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL: (True, True),
    }
    checked = 0
    for start, end in ranges:
        for kw, column, value in filters:
            rows = [r for r in all_rows if column == "" or r[column] == value]
            for group_by, (by_day, by_model) in groupings.items():
                resp = await w.stub.UsageStats(
                    billing_pb2.UsageStatsRequest(
                        filter=billing_pb2.UsageFilter(
                            start_timestamp=start,
                            end_timestamp=end,
                            **kw,  # type: ignore[arg-type]
                        ),
                        group_by=group_by,
                    )
                )
                expected = _expected_stats(rows, start, end, by_day, by_model)
                got = {
                    (s.day, s.model_name): (
                        s.requests,
                        s.prompt_tokens,
                        s.completion_tokens,
                        s.quota,
                    )
                    for s in resp.rows
                }
                total = _expected_stats(rows, start, end, False, False).get(("", ""), (0, 0, 0, 0))
                t = resp.total
                assert (t.requests, t.prompt_tokens, t.completion_tokens, t.quota) == total
                if group_by == billing_pb2.STATS_GROUP_BY_NONE:
                    assert not resp.rows
                else:
                    assert got == expected, (start, end, kw, group_by)
                    assert [(s.day, s.model_name) for s in resp.rows] == sorted(got)
                checked += 1
    # Ranges that split days really did: some answers span several days.
    assert checked == len(ranges) * len(filters) * 4
    assert len({r["created_at"] // DAY for r in all_rows}) >= 4


async def test_cli_lists_exports_and_reports_stats(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    w = world
    out = tmp_path_factory.mktemp("export") / "bob.csv"
    done = await asyncio.to_thread(
        run_cli, w.env, "logs", "list", "--user", "bob", "--type", "consume", "--csv", str(out)
    )
    rows = list(csv.DictReader(out.open(newline="")))
    truth = await w.env.pg.fetch(
        "SELECT request_id, quota FROM logs WHERE type = 2 AND user_id = $1", w.users["bob"]
    )
    assert {r["request_id"] for r in rows} == {t["request_id"] for t in truth}
    assert sum(int(r["quota"]) for r in rows) == sum(t["quota"] for t in truth)
    assert "bytes of CSV" in done.stderr

    since = str(w.t0)
    listed = await asyncio.to_thread(
        run_cli, w.env, "logs", "list", "--token", TRICKY_NAME, "--start", since, "--page-size", "2"
    )
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("id\ttime\ttype") and len(lines) == 3
    assert f"total {len(w.calls['alice'])}; page 0 of size 2" in listed.stderr

    stats = await asyncio.to_thread(
        run_cli, w.env, "logs", "stats", "--by", "model", "--user", "alice"
    )
    table = [line.split("\t") for line in stats.stdout.splitlines()]
    assert table[0] == ["model", "requests", "prompt_tokens", "completion_tokens", "quota"]
    truth = await w.env.pg.fetch(
        "SELECT model_name, count(*), sum(prompt_tokens), sum(completion_tokens), sum(quota)"
        " FROM logs WHERE type = 2 AND user_id = $1 GROUP BY 1 ORDER BY 1",
        w.users["alice"],
    )
    assert table[1:-1] == [[str(v) for v in t.values()] for t in truth]
    assert table[-1] == ["total", *(str(sum(t[i] for t in truth)) for i in range(1, 5))]

    bad = await asyncio.to_thread(
        run_cli, w.env, "logs", "list", "--start", "2030-01-02", "--end", "2030-01-01", ok=False
    )
    assert "INVALID_ARGUMENT" in bad.stderr


async def _manage_rows(pg: asyncpg.Pool, user_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pg.fetch(
        "SELECT token_id, quota, content FROM logs WHERE type = 3 AND user_id = $1 ORDER BY id",
        user_id,
    )
    return rows


async def _refused(key: str, base_url: str) -> bool:
    try:
        await _call(key, base_url, MODEL, False)
    except openai.PermissionDeniedError as exc:
        assert exc.response.json()["error"]["code"] == "insufficient_quota"
        return True
    return False


async def test_quota_adjustments_are_ledger_rows_and_take_effect_at_once(world: World) -> None:
    env = world.env
    user_id = await admin_writes.create_user(env.pg, username="dave", password="a-long-password")
    key = (
        await admin_writes.create_token(env.pg, user_id=user_id, name="d", unlimited_quota=True)
    ).key
    # Broke, and auth has now cached the empty balance in Redis.
    assert await _refused(key, env.base_url)

    done = await asyncio.to_thread(
        run_cli, env, "user", "quota", "--user", "dave", "--add", "2000000"
    )
    assert done.stdout.strip() == "0 -> 2000000 (+2000000)"
    [row] = await _manage_rows(env.pg, user_id)
    assert (row["token_id"], row["quota"]) == (0, 2_000_000)
    assert "'root' (#1) added quota of user 'dave'" in row["content"]
    assert await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id) == 2_000_000
    assert not await _refused(key, env.base_url)  # the very next request, no waiting

    # Setting it back to 0 (after the charge above is in) is a row too, and also immediate.
    await wait_drained(env)
    left = await env.pg.fetchval("SELECT quota FROM users WHERE id = $1", user_id)
    assert 0 < left < 2_000_000
    await asyncio.to_thread(run_cli, env, "user", "quota", "--user", str(user_id), "--set", "0")
    assert [r["quota"] for r in await _manage_rows(env.pg, user_id)] == [2_000_000, -left]
    assert await _refused(key, env.base_url)

    # A key's own remaining quota, by id.
    await asyncio.to_thread(run_cli, env, "user", "quota", "--user", "dave", "--set", "10000000")
    token = await admin_writes.create_token(env.pg, user_id=user_id, name="limited", remain_quota=0)
    assert await _refused(token.key, env.base_url)
    done = await asyncio.to_thread(
        run_cli, env, "token", "quota", "--token", str(token.id), "--set", "3000000"
    )
    assert done.stdout.strip() == "0 -> 3000000 (+3000000)"
    last = (await _manage_rows(env.pg, user_id))[-1]
    assert (last["token_id"], last["quota"]) == (token.id, 3_000_000)
    assert "token 'limited'" in last["content"]
    assert not await _refused(token.key, env.base_url)

    # Visible through billing like any other row.
    resp = await world.stub.ListLogs(
        billing_pb2.ListLogsRequest(filter=_filter(type=3, user_id=user_id))
    )
    assert resp.total == 4

    quota = QuotaStore(env.redis, env.ns)
    for kwargs in (
        {"add": 1, "set_to": 1},
        {},
        {"set_to": -1},
        {"add": -(10**12)},
        {"add": 0},
    ):
        with pytest.raises(ValueError):
            await admin_writes.adjust_quota(
                env.pg,
                target="user",
                target_id=user_id,
                actor_id=1,
                quota=quota,
                **kwargs,  # type: ignore[arg-type]
            )
    with pytest.raises(ValueError, match="no token"):
        await admin_writes.adjust_quota(
            env.pg, target="token", target_id=10**9, actor_id=1, add=5, quota=quota
        )
    assert len(await _manage_rows(env.pg, user_id)) == 4  # refused changes wrote nothing
