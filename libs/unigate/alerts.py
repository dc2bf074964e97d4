"""Operator notifications: a channel disabled or re-enabled, a key of a channel disabled,
a user's balance running low. Each goes by email to the root user (One API mails root) and to every
webhook of the ``NotificationWebhooks`` option, in the format its receiver expects:

- ``generic``: ``{"event", "title", "text", "details", "time"}``; with a ``secret``, signed
  as ``X-Unigate-Signature: sha256=<hex HMAC-SHA256 of "<X-Unigate-Timestamp>.<body>">``.
- ``slack`` (incoming webhook): ``{"text"}``; Slack answers 200 ``ok``.
- ``discord``: ``{"content"}`` (at most 2,000 characters); Discord answers 204.
- ``feishu`` (Feishu/Lark custom bot): ``{"msg_type": "text", "content": {"text"}}``, with a
  ``secret`` also ``timestamp`` (seconds) and ``sign`` = base64(HMAC-SHA256 keyed with
  ``"<timestamp>\\n<secret>"`` over nothing); Feishu answers HTTP 200 with ``code`` 0, or
  another ``code`` when it refused the message.
- ``dingtalk`` (DingTalk custom robot): ``{"msgtype": "text", "text": {"content"}}``, with a
  ``secret`` the URL gains ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256 keyed with
  the secret over ``"<timestamp>\\n<secret>"``); DingTalk answers 200 with ``errcode`` 0.

Sending never holds up whoever raised the alert: :meth:`Notifier.send` only queues it; one
worker delivers, retrying a destination that failed in a way that may pass (network error,
429, 5xx, a bot's "try later") with a doubling pause, and logs what it finally could not send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import orjson

from unigate.mailer import MailError, SmtpSettings, send_mail

log = logging.getLogger(__name__)

WEBHOOK_KINDS = frozenset({"generic", "slack", "discord", "feishu", "dingtalk"})
_DISCORD_LIMIT = 2000
_QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing an operator should hear about."""

    event: str  # channel_disabled, channel_enabled, channel_key_disabled, quota_low, ...
    title: str
    text: str
    details: Mapping[str, object] = field(default_factory=dict)
    # Mailed besides root: the user a low-balance reminder is about (One API mails them).
    also_to: tuple[str, ...] = ()
    at: int = field(default_factory=lambda: int(time.time()))

    def message(self) -> str:
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True, slots=True)
class Webhook:
    kind: str
    url: str
    secret: str = ""


def parse_webhooks(raw: str | None) -> list[Webhook]:
    """The ``NotificationWebhooks`` option: a JSON list of ``{"type", "url", "secret"?}``;
    a ValueError says what is wrong with it."""
    if raw is None or not raw.strip():
        return []
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"NotificationWebhooks is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError("NotificationWebhooks must be a JSON list")
    hooks = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("each webhook must be an object with type and url")
        kind = str(item.get("type", "generic")).lower()
        url = str(item.get("url", ""))
        if kind not in WEBHOOK_KINDS:
            raise ValueError(f"webhook type {kind!r} is not one of {sorted(WEBHOOK_KINDS)}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r} is not an http(s) URL")
        hooks.append(Webhook(kind=kind, url=url, secret=str(item.get("secret", "") or "")))
    return hooks


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def webhook_request(hook: Webhook, alert: Alert, now: float) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of the POST that tells ``hook`` about ``alert`` at ``now``."""
    headers = {"Content-Type": "application/json"}
    url = hook.url
    body: dict[str, object]
    if hook.kind == "slack":
        body = {"text": alert.message()}
    elif hook.kind == "discord":
        body = {"content": alert.message()[:_DISCORD_LIMIT]}
    elif hook.kind == "feishu":
        body = {"msg_type": "text", "content": {"text": alert.message()}}
        if hook.secret:
            ts = str(int(now))
            body = {
                "timestamp": ts,
                "sign": _b64_hmac(f"{ts}\n{hook.secret}".encode(), b""),
                **body,
            }
    elif hook.kind == "dingtalk":
        body = {"msgtype": "text", "text": {"content": alert.message()}}
        if hook.secret:
            ts = str(int(now * 1000))
            sign = _b64_hmac(hook.secret.encode(), f"{ts}\n{hook.secret}".encode())
            # httpx would not merge these into a query the URL already has: build it here.
            joiner = "&" if "?" in url else "?"
            url = f"{url}{joiner}{httpx.QueryParams({'timestamp': ts, 'sign': sign})}"
    else:
        body = {
            "event": alert.event,
            "title": alert.title,
            "text": alert.text,
            "details": dict(alert.details),
            "time": alert.at,
        }
    raw = orjson.dumps(body)
    if hook.kind == "generic" and hook.secret:
        ts = str(int(now))
        digest = hmac.new(hook.secret.encode(), ts.encode() + b"." + raw, hashlib.sha256)
        headers["X-Unigate-Timestamp"] = ts
        headers["X-Unigate-Signature"] = "sha256=" + digest.hexdigest()
    return url, headers, raw


class DeliveryError(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def check_answer(hook: Webhook, response: httpx.Response) -> None:
    """Raise DeliveryError unless the receiver took the message."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise DeliveryError(f"HTTP {status}", retry=True)
    if status >= 300:
        raise DeliveryError(f"HTTP {status}: {response.text[:200]}", retry=False)
    if hook.kind in ("feishu", "dingtalk"):
        # Both bots answer 200 and say in the body whether they took the message.
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(f"unreadable answer: {response.text[:200]}", retry=True) from None
        code = (
            answer.get("code", answer.get("StatusCode", 0))
            if hook.kind == "feishu"
            else (answer.get("errcode", 0))
        )
        if code not in (0, None):
            message = answer.get("msg") or answer.get("errmsg") or answer
            # DingTalk's 130101 / Feishu's 11232 are "sending too fast": worth another try.
            raise DeliveryError(f"refused ({code}): {message}", retry=code in (130101, 11232))


@dataclass(frozen=True, slots=True)
class Recipients:
    """Where alerts go, read afresh for each alert (options change at run time)."""

    smtp: SmtpSettings | None
    emails: list[str]
    webhooks: list[Webhook]


class Notifier:
    def __init__(
        self,
        recipients: Callable[[], Awaitable[Recipients]],
        *,
        http: httpx.AsyncClient | None = None,
        attempts: int = 4,
        first_pause: float = 1.0,
    ) -> None:
        self._recipients = recipients
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._attempts = attempts
        self._first_pause = first_pause
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=_QUEUE_LIMIT)

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery; never waits."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            log.error("notification queue full; dropped: %s", alert.title)

    async def run(self) -> None:
        """The delivery worker: one alert at a time, each to all its destinations at once."""
        while True:
            alert = await self._queue.get()
            try:
                await self.deliver(alert)
            except Exception:
                log.exception("could not deliver notification %s", alert.title)

    async def deliver(self, alert: Alert) -> None:
        to = await self._recipients()
        jobs: list[Awaitable[None]] = [self._post(hook, alert) for hook in to.webhooks]
        if to.smtp is not None:
            addresses = dict.fromkeys([*to.emails, *alert.also_to])  # once each, in order
            jobs += [self._mail(to.smtp, address, alert) for address in addresses]
        await asyncio.gather(*jobs)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        # Four tries over about seven seconds: a receiver's brief hiccup passes, a dead one
        # does not keep the worker (and the alerts queued behind) waiting long.
        pause = self._first_pause
        for n in range(1, self._attempts + 1):
            try:
                await attempt()
                return
            except DeliveryError as exc:
                if not exc.retry or n == self._attempts:
                    log.error("notification to %s not delivered: %s", what, exc)
                    return
                log.warning("notification to %s failed (%s); retrying", what, exc)
            await asyncio.sleep(pause)
            pause *= 2

    async def _post(self, hook: Webhook, alert: Alert) -> None:
        async def attempt() -> None:
            url, headers, body = webhook_request(hook, alert, time.time())
            try:
                response = await self._http.post(url, headers=headers, content=body)
            except httpx.HTTPError as exc:
                raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=True) from exc
            check_answer(hook, response)

        # The URL of a bot webhook is its credential: log the host only.
        await self._retrying(f"{hook.kind} webhook at {httpx.URL(hook.url).host}", attempt)

    async def _mail(self, smtp: SmtpSettings, address: str, alert: Alert) -> None:
        async def attempt() -> None:
            try:
                await send_mail(smtp, address, alert.title, alert.text)
            except MailError as exc:
                raise DeliveryError(str(exc), retry=True) from exc

        await self._retrying(f"mail to {address}", attempt)

    async def aclose(self) -> None:
        await self._http.aclose()
