"""Where auth asks each One API reseller for its balance: at the address One API calls for a
channel on the type's default base URL, and at the channel's own base otherwise."""

from __future__ import annotations

import pytest

from unigate.channel_types import channel_type
from unigate_auth.admin.balances import balance_url


@pytest.mark.parametrize(
    ("type_id", "base", "expected"),
    [
        (4, "", "https://api.closeai-proxy.xyz/dashboard/billing/credit_grants"),
        (5, "", "https://api.openai-sb.com/sb-api/user/status"),
        # AIProxy's account API is on aiproxy.io, not on its model API's host.
        (10, "", "https://aiproxy.io/api/report/getUserOverview"),
        (10, "https://api.aiproxy.io/", "https://aiproxy.io/api/report/getUserOverview"),
        (10, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/api/report/getUserOverview"),
        (12, "", "https://api.api2gpt.com/dashboard/billing/credit_grants"),
        (13, "https://api.aigc2d.com/v1", "https://api.aigc2d.com/dashboard/billing/credit_grants"),
    ],
)
def test_balance_url(type_id: int, base: str, expected: str) -> None:
    ct = channel_type(type_id)
    assert ct is not None and ct.balance is not None
    assert balance_url(ct, ct.balance, base) == expected


def test_resellers_without_a_balance_api_have_none() -> None:
    for type_id in (2, 6, 7, 9):  # API2D, OpenAIMax, OhMyGPT, AI.LS: One API reads none
        ct = channel_type(type_id)
        assert ct is not None and ct.balance is None
