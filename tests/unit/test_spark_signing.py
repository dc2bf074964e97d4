"""The Spark URL signer against iFlytek's documented example, and the simulator's handshake
check against the signer: a signature from the right secret, for the right host, path and a
fresh date, passes; anything else is refused with iFlytek's status."""

from __future__ import annotations

import base64
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unigate_relay.providers.spark.auth import (
    KeyFormatError,
    authorization,
    parse_key,
    signature,
    signed_url,
)
from unigate_sim.spark.signing import (
    BAD_DATE,
    CANNOT_VERIFY,
    DOMAINS_BY_PATH,
    NO_MATCH,
    NO_ROUTE,
    UNAUTHORIZED,
    Refusal,
    check_handshake,
)

# https://www.xfyun.cn/doc/spark/general_url_authentication.html, section 1.2.
DOC_SECRET = "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi"
DOC_KEY = "addd2272b6d8b7c8abdd79531420ca3b"
DOC_DATE = "Fri, 05 May 2023 10:43:39 GMT"
DOC_SIGNATURE = "z5gHdu3pxVV4ADMyk467wOWDQ9q6BQzR3nfMTjc/DaQ="
DOC_AUTHORIZATION = (
    "YXBpX2tleT0iYWRkZDIyNzJiNmQ4YjdjOGFiZGQ3OTUzMTQyMGNhM2IiLCBhbGdvcml0aG09ImhtYWMtc2hhMjU2"
    "IiwgaGVhZGVycz0iaG9zdCBkYXRlIHJlcXVlc3QtbGluZSIsIHNpZ25hdHVyZT0iejVnSGR1M3B4VlY0QURNeWs0"
    "Njd3T1dEUTlxNkJRelIzbmZNVGpjL0RhUT0i"
)
DOC_NOW = parsedate_to_datetime(DOC_DATE).timestamp()
HOST = "spark-api.xf-yun.com"


def test_signer_reproduces_iflyteks_worked_example() -> None:
    assert signature(HOST, DOC_DATE, "/v1.1/chat", DOC_SECRET) == DOC_SIGNATURE
    assert authorization(DOC_KEY, DOC_SIGNATURE) == DOC_AUTHORIZATION
    url = signed_url(f"wss://{HOST}/v1.1/chat", DOC_KEY, DOC_SECRET, DOC_DATE)
    assert url == (
        f"wss://{HOST}/v1.1/chat?authorization={DOC_AUTHORIZATION}"
        f"&date=Fri%2C+05+May+2023+10%3A43%3A39+GMT&host={HOST}"
    )


def test_simulator_accepts_the_documented_example() -> None:
    url = signed_url(f"wss://{HOST}/v1.1/chat", DOC_KEY, DOC_SECRET, DOC_DATE)
    target = url.removeprefix(f"wss://{HOST}")
    assert check_handshake(target, HOST, {DOC_KEY: DOC_SECRET}, DOC_NOW) == ("/v1.1/chat", DOC_KEY)


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _signed(path: str = "/v3.5/chat", secret: str = DOC_SECRET, key: str = DOC_KEY) -> str:
    return _target(signed_url(f"wss://{HOST}{path}", key, secret, DOC_DATE))


@pytest.mark.parametrize(
    ("target", "host", "now", "refusal"),
    [
        (_signed(secret=DOC_SECRET + "x"), HOST, DOC_NOW, Refusal(401, NO_MATCH)),
        (_signed(key="someone-else"), HOST, DOC_NOW, Refusal(401, CANNOT_VERIFY)),
        (_signed(), "evil.example", DOC_NOW, Refusal(401, NO_MATCH)),
        (_signed(), HOST, DOC_NOW + 301, Refusal(403, BAD_DATE)),
        (_signed(), HOST, DOC_NOW - 301, Refusal(403, BAD_DATE)),
        (_signed().replace("/v3.5/", "/v4.0/"), HOST, DOC_NOW, Refusal(401, NO_MATCH)),
        (_signed().replace("/v3.5/chat", "/v9/chat"), HOST, DOC_NOW, Refusal(404, NO_ROUTE)),
        ("/v3.5/chat?date=x&host=" + HOST, HOST, DOC_NOW, Refusal(401, UNAUTHORIZED)),
    ],
)
def test_simulator_refuses_what_iflytek_refuses(
    target: str, host: str, now: float, refusal: Refusal
) -> None:
    assert check_handshake(target, host, {DOC_KEY: DOC_SECRET}, now) == refusal


def test_simulator_refuses_other_algorithms_and_header_lists() -> None:
    for origin in (
        f'api_key="{DOC_KEY}", algorithm="hmac-sha1", headers="host date request-line", '
        f'signature="{DOC_SIGNATURE}"',
        f'api_key="{DOC_KEY}", algorithm="hmac-sha256", headers="host date", '
        f'signature="{DOC_SIGNATURE}"',
    ):
        forged = base64.b64encode(origin.encode()).decode()
        query = parse_qs(urlsplit(_signed("/v1.1/chat")).query)
        target = "/v1.1/chat?" + "&".join(
            [
                f"authorization={forged}",
                "date=" + query["date"][0].replace(" ", "+"),
                "host=" + HOST,
            ]
        )
        assert check_handshake(target, HOST, {DOC_KEY: DOC_SECRET}, DOC_NOW) == Refusal(
            401, CANNOT_VERIFY
        )


secret_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40
)


@given(
    secret=secret_text,
    key=st.text(alphabet="abcdef0123456789", min_size=8, max_size=32),
    path=st.sampled_from(sorted(DOMAINS_BY_PATH)),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_every_signed_url_verifies_and_only_with_its_secret(
    secret: str, key: str, path: str, skew: int
) -> None:
    target = _target(signed_url(f"wss://{HOST}{path}", key, secret, DOC_DATE))
    assert check_handshake(target, HOST, {key: secret}, DOC_NOW + skew) == (path, key)
    assert check_handshake(target, HOST, {key: secret[::-1] + "!"}, DOC_NOW) == Refusal(
        401, NO_MATCH
    )


def test_channel_key_is_appid_secret_key() -> None:
    key = parse_key(" app1|secret|apikey ")
    assert (key.app_id, key.api_secret, key.api_key) == ("app1", "secret", "apikey")
    for bad in ("app|secret", "app||key", "a|b|c|d"):
        with pytest.raises(KeyFormatError):
            parse_key(bad)
