"""What root may read back of the options, and what a masked value saved back means.

Options whose names end in Secret, Token, Password or Key hold credentials (SMTP's password,
the OAuth client secrets, Turnstile's secret key, ...): they are never listed (One API leaves
out those ending in Token or Secret), only replaced; Turnstile's site key is public (it is in
every page with the widget, and in ``/api/status``).

``NotificationWebhooks`` holds credentials inside its JSON: each webhook's signing
``secret``, and the URL itself, which is the bearer credential of Slack's, Discord's and
Feishu's webhooks (a token in the path) and DingTalk's (``access_token`` in the query). It is
listed with both masked (the scheme and host kept, so the list can be recognised and edited),
and a list saved back with those masks keeps what is stored, as a channel's masked key does:
a masked URL stands for the stored webhook it was made from, a masked secret for that
webhook's secret.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from unigate.keys import MASK

SECRET_OPTION = re.compile(r"(secret|token|password|key)$", re.IGNORECASE)
_PUBLIC_OPTIONS = frozenset({"TurnstileSiteKey"})
WEBHOOKS = "NotificationWebhooks"
# How much of a webhook URL's path and query a read shows (its end, to tell apart webhooks
# on one host), when there is enough of it that the rest stays secret.
_SHOWN_TAIL = 4
_MIN_HIDDEN = 12


def is_secret(key: str) -> bool:
    """Whether the option ``key`` is a credential, never read back."""
    return key not in _PUBLIC_OPTIONS and SECRET_OPTION.search(key) is not None


def masked_url(url: str) -> str:
    """A webhook URL as a read shows it: scheme and host, the rest masked."""
    parts = urlsplit(url)
    rest = url[len(f"{parts.scheme}://{parts.netloc}") :]
    tail = rest[-_SHOWN_TAIL:] if len(rest) >= _MIN_HIDDEN else ""
    # Credentials in the authority (user:password@) are never shown either.
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/{MASK}{tail}"


def _masked_url_of(hook: dict[str, Any]) -> str | None:
    url = hook.get("url")
    return masked_url(url) if isinstance(url, str) else None


def _hooks(raw: str | None) -> list[Any] | None:
    """The option's JSON list, or None when it is not one (then it is shown or checked as
    it is: the save's own validation words the mistake)."""
    try:
        value = orjson.loads(raw or "")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def shown_webhooks(raw: str) -> str:
    """``NotificationWebhooks`` as a read shows it: every URL and secret masked."""
    hooks = _hooks(raw)
    if hooks is None:
        # Not a list (never saved so: the save checks it): nothing in it can be trusted
        # to be free of secrets.
        return MASK if raw.strip() else raw
    shown = []
    for hook in hooks:
        if not isinstance(hook, dict):
            continue
        item = dict(hook)
        if isinstance(item.get("url"), str):
            item["url"] = masked_url(item["url"])
        if item.get("secret"):
            item["secret"] = MASK
        shown.append(item)
    return orjson.dumps(shown).decode()


def readable(options: dict[str, str]) -> dict[str, str]:
    """The options root may read: credentials left out, the webhooks masked."""
    out = {k: v for k, v in options.items() if not is_secret(k)}
    if WEBHOOKS in out:
        out[WEBHOOKS] = shown_webhooks(out[WEBHOOKS])
    return out


def restored_webhooks(new: str, stored: str | None) -> str:
    """``new`` with each masked URL and secret replaced by the stored value it stands for;
    a ValueError when a mask stands for nothing stored (the client must send the value)."""
    hooks = _hooks(new)
    if hooks is None or MASK not in new:
        return new
    kept = [h for h in _hooks(stored) or [] if isinstance(h, dict)]
    unused = list(kept)
    out = []
    for hook in hooks:
        if not isinstance(hook, dict):
            out.append(hook)
            continue
        item = dict(hook)
        url = item.get("url")
        source = None
        if isinstance(url, str) and MASK in url:
            source = next((h for h in unused if _masked_url_of(h) == url), None)
            if source is None:
                raise ValueError(
                    f"webhook url {url!r} is masked but is no stored webhook's: send the full URL"
                )
            unused.remove(source)
            item["url"] = source["url"]
        elif isinstance(url, str):
            source = next((h for h in kept if h.get("url") == url), None)
        secret = item.get("secret")
        if isinstance(secret, str) and MASK in secret:
            if source is None or not source.get("secret"):
                raise ValueError(
                    "a webhook secret is masked but its webhook has no stored secret:"
                    " send the secret"
                )
            item["secret"] = source["secret"]
        out.append(item)
    return orjson.dumps(out).decode()
