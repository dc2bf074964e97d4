"""Operator notifications (``unigate.alerts``): each webhook format as its receiver documents
it, the bots' signatures recomputed here from their published algorithms, retries of what
may pass and none of what will not, and mail to root through a real SMTP server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import urllib.parse

import httpx
import orjson
import pytest

from tests.smtp_inbox import smtp_inbox
from unigate.alerts import (
    Alert,
    DeliveryError,
    Notifier,
    Recipients,
    Webhook,
    check_answer,
    parse_webhooks,
    webhook_request,
)
from unigate.mailer import SmtpSettings

ALERT = Alert(
    "channel_disabled",
    "Channel #7 (main) disabled",
    "The periodic test failed: 500",
    {"channel_id": 7},
    at=1_700_000_000,
)
NOW = 1_700_000_123.456


def test_generic_body_and_signature() -> None:
    url, headers, body = webhook_request(
        Webhook("generic", "https://example.test/hook", "s3cret"), ALERT, NOW
    )
    assert url == "https://example.test/hook"
    assert orjson.loads(body) == {
        "event": "channel_disabled",
        "title": "Channel #7 (main) disabled",
        "text": "The periodic test failed: 500",
        "details": {"channel_id": 7},
        "time": 1_700_000_000,
    }
    assert headers["X-Unigate-Timestamp"] == "1700000123"
    want = hmac.new(b"s3cret", b"1700000123." + body, hashlib.sha256).hexdigest()
    assert headers["X-Unigate-Signature"] == "sha256=" + want
    # Without a secret nothing is signed.
    _, plain, _ = webhook_request(Webhook("generic", "https://example.test/hook"), ALERT, NOW)
    assert "X-Unigate-Signature" not in plain


def test_slack_and_discord_bodies() -> None:
    _, _, slack = webhook_request(Webhook("slack", "https://hooks.slack.test/x"), ALERT, NOW)
    assert orjson.loads(slack) == {
        "text": "Channel #7 (main) disabled\nThe periodic test failed: 500"
    }
    long = Alert("e", "t", "x" * 5000)
    _, _, discord = webhook_request(
        Webhook("discord", "https://discord.test/api/webhooks/1/a"), long, NOW
    )
    content = orjson.loads(discord)["content"]
    assert content.startswith("t\nxxx") and len(content) == 2000


def test_feishu_signed_body() -> None:
    _, _, raw = webhook_request(
        Webhook("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "fs-secret"),
        ALERT,
        NOW,
    )
    body = orjson.loads(raw)
    assert body["msg_type"] == "text"
    assert body["content"] == {"text": ALERT.message()}
    # Feishu: HMAC-SHA256 keyed with "timestamp\nsecret" over an empty message, base64.
    assert body["timestamp"] == "1700000123"
    key = b"1700000123\nfs-secret"
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def test_dingtalk_signed_url() -> None:
    url, _, raw = webhook_request(
        Webhook("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=tok", "SECabc"),
        ALERT,
        NOW,
    )
    assert orjson.loads(raw) == {"msgtype": "text", "text": {"content": ALERT.message()}}
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    assert query["access_token"] == ["tok"]
    assert query["timestamp"] == ["1700000123456"]
    # DingTalk: HMAC-SHA256 keyed with the secret over "timestamp\nsecret", base64, urlencoded.
    digest = hmac.new(b"SECabc", b"1700000123456\nSECabc", hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert "sign=" + urllib.parse.quote_plus(base64.b64encode(digest).decode()) in url


def test_parse_webhooks_refuses_what_it_cannot_use() -> None:
    assert parse_webhooks("") == []
    hooks = parse_webhooks('[{"type": "Slack", "url": "https://h.test/x"}, {"url": "http://g"}]')
    assert hooks == [Webhook("slack", "https://h.test/x"), Webhook("generic", "http://g")]
    for bad in (
        "{",
        '{"type": "slack"}',
        '[{"type": "teams", "url": "https://x"}]',
        '[{"url": "ftp://x"}]',
    ):
        with pytest.raises(ValueError):
            parse_webhooks(bad)


def _answer(status: int, body: object = None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


def test_answers_judged_as_each_receiver_means_them() -> None:
    ding, feishu, slack = (Webhook(k, "https://x.test") for k in ("dingtalk", "feishu", "slack"))
    check_answer(ding, _answer(200, {"errcode": 0, "errmsg": "ok"}))
    check_answer(feishu, _answer(200, {"code": 0, "msg": "success"}))
    check_answer(slack, httpx.Response(200, text="ok"))
    with pytest.raises(DeliveryError) as refused:
        check_answer(ding, _answer(200, {"errcode": 310000, "errmsg": "sign not match"}))
    assert not refused.value.retry
    with pytest.raises(DeliveryError) as too_fast:
        check_answer(ding, _answer(200, {"errcode": 130101, "errmsg": "send too fast"}))
    assert too_fast.value.retry
    with pytest.raises(DeliveryError) as bad_sign:
        check_answer(feishu, _answer(200, {"code": 19021, "msg": "sign match fail"}))
    assert not bad_sign.value.retry
    with pytest.raises(DeliveryError) as gone:
        check_answer(slack, httpx.Response(404, text="no_service"))
    assert not gone.value.retry
    for status in (429, 500, 503):
        with pytest.raises(DeliveryError) as busy:
            check_answer(slack, _answer(status))
        assert busy.value.retry


async def test_retries_what_may_pass_and_gives_up_on_what_will_not() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/flaky" and seen.count("/flaky") < 3:
            return httpx.Response(503)
        if request.url.path == "/gone":
            return httpx.Response(404)
        return httpx.Response(204)

    hooks = [Webhook("discord", "https://h.test/flaky"), Webhook("generic", "https://h.test/gone")]

    async def recipients() -> Recipients:
        return Recipients(None, [], hooks)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    notifier = Notifier(recipients, http=http, first_pause=0.01)
    await notifier.deliver(ALERT)
    await notifier.aclose()
    assert seen.count("/flaky") == 3  # two 503s, then delivered
    assert seen.count("/gone") == 1  # a 404 is not retried


async def test_mail_reaches_root_and_send_never_waits() -> None:
    with smtp_inbox() as inbox:
        smtp = SmtpSettings.from_options(inbox.options())

        async def recipients() -> Recipients:
            return Recipients(smtp, ["root@unigate.test"], [])

        notifier = Notifier(recipients, first_pause=0.01)
        worker = asyncio.create_task(notifier.run())
        notifier.send(ALERT)  # queued: returns at once
        message = await asyncio.to_thread(inbox.wait_for, "root@unigate.test")
        worker.cancel()
        await notifier.aclose()
    assert message["Subject"] == ALERT.title
    assert "The periodic test failed: 500" in message.get_content()
