"""Options read back by root: credentials left out, the notification webhooks' URLs and
secrets masked, and a masked list saved back restored to what is stored."""

from __future__ import annotations

import orjson
import pytest

from unigate.alerts import parse_webhooks
from unigate.keys import MASK
from unigate_auth.admin.option_secrets import (
    WEBHOOKS,
    masked_url,
    readable,
    restored_webhooks,
    shown_webhooks,
)

SLACK = "https://hooks.slack.com/services/T0001/B0002/slacksecretslacksecret"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=dingdingdingdingtoken"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/feishu-hook-uuid-0001"
HOOKS = [
    {"type": "slack", "url": SLACK},
    {"type": "dingtalk", "url": DINGTALK, "secret": "SECdingsigningsecret"},
    {"type": "feishu", "url": FEISHU, "secret": "feishusigningsecret"},
]
STORED = orjson.dumps(HOOKS).decode()
SECRETS = ["slacksecret", "dingdingding", "SECdingsigning", "feishu-hook-uuid", "feishusigning"]


def test_credentials_are_left_out_and_webhooks_masked() -> None:
    options = {
        "SMTPToken": "smtp-password",
        "GitHubClientSecret": "gh-secret",
        "TurnstileSecretKey": "ts-secret",
        "WeChatServerToken": "wx-token",
        "TurnstileSiteKey": "public-site-key",
        "SMTPAccount": "mailer@example.com",
        WEBHOOKS: STORED,
    }
    shown = readable(options)
    assert set(shown) == {"TurnstileSiteKey", "SMTPAccount", WEBHOOKS}
    text = shown[WEBHOOKS]
    for secret in SECRETS:
        assert secret not in text
    listed = orjson.loads(text)
    assert [h["url"] for h in listed] == [
        f"https://hooks.slack.com/{MASK}cret",
        f"https://oapi.dingtalk.com/{MASK}oken",
        f"https://open.feishu.cn/{MASK}0001",
    ]
    assert [h.get("secret") for h in listed] == [None, MASK, MASK]
    assert [h["type"] for h in listed] == ["slack", "dingtalk", "feishu"]


def test_userinfo_and_short_paths_are_not_shown() -> None:
    assert masked_url("https://user:pw@example.com:8443/hook") == f"https://example.com:8443/{MASK}"
    assert shown_webhooks("not json at all") == MASK
    assert shown_webhooks("") == ""


def test_the_masked_list_saved_back_keeps_every_stored_value() -> None:
    shown = shown_webhooks(STORED)
    assert orjson.loads(restored_webhooks(shown, STORED)) == HOOKS
    # Reordered, one removed, one added, one secret replaced: each mask finds its own.
    edited = orjson.loads(shown)
    edited = [edited[2], edited[0]]
    edited[0]["secret"] = "new-feishu-secret"
    edited.append({"type": "generic", "url": "https://ops.example.com/alerts", "secret": "g"})
    restored = orjson.loads(restored_webhooks(orjson.dumps(edited).decode(), STORED))
    assert restored == [
        {"type": "feishu", "url": FEISHU, "secret": "new-feishu-secret"},
        {"type": "slack", "url": SLACK},
        {"type": "generic", "url": "https://ops.example.com/alerts", "secret": "g"},
    ]
    # A full URL with a masked secret keeps that webhook's stored secret.
    kept = [{"type": "dingtalk", "url": DINGTALK, "secret": MASK}]
    assert orjson.loads(restored_webhooks(orjson.dumps(kept).decode(), STORED)) == [HOOKS[1]]
    assert len(parse_webhooks(restored_webhooks(shown, STORED))) == 3


def test_two_webhooks_on_one_host_are_told_apart() -> None:
    other = "https://hooks.slack.com/services/T0001/B0003/otherslackhooktoken"
    stored = orjson.dumps([{"type": "slack", "url": SLACK}, {"type": "slack", "url": other}])
    shown = orjson.loads(shown_webhooks(stored.decode()))
    swapped = orjson.dumps([shown[1], shown[0]]).decode()
    assert [h["url"] for h in orjson.loads(restored_webhooks(swapped, stored.decode()))] == [
        other,
        SLACK,
    ]


@pytest.mark.parametrize(
    "hooks",
    [
        [{"type": "slack", "url": f"https://hooks.slack.com/{MASK}nope"}],
        [{"type": "generic", "url": "https://ops.example.com/alerts", "secret": MASK}],
        [{"type": "slack", "url": SLACK, "secret": MASK}],
    ],
)
def test_a_mask_that_stands_for_nothing_stored_is_refused(hooks: list[object]) -> None:
    with pytest.raises(ValueError, match="masked"):
        restored_webhooks(orjson.dumps(hooks).decode(), STORED)


def test_a_mask_is_used_once() -> None:
    shown = orjson.loads(shown_webhooks(STORED))
    twice = orjson.dumps([shown[0], shown[0]]).decode()
    with pytest.raises(ValueError, match="masked"):
        restored_webhooks(twice, STORED)
