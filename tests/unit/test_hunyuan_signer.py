"""TC3-HMAC-SHA256: the relay's signer against Tencent's documented example
(https://cloud.tencent.com/document/api/213/30654, the CVM DescribeInstances request), and
the Hunyuan simulator's independent verifier against the relay's signer."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unigate_relay.providers.hunyuan import signer
from unigate_relay.providers.hunyuan.adapter import split_key
from unigate_sim.hunyuan import Refusal, verify

# The documented example, byte for byte.
PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TIMESTAMP = 1551113065
CONTENT_TYPE = "application/json; charset=utf-8"
HOST = "cvm.tencentcloudapi.com"


def test_canonical_request_and_string_to_sign_match_the_documented_example() -> None:
    assert hashlib.sha256(PAYLOAD).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical = signer.canonical_request(CONTENT_TYPE, HOST, PAYLOAD)
    assert canonical == (
        "POST\n/\n\n"
        "content-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
        "content-type;host\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert signer.string_to_sign(TIMESTAMP, "cvm", canonical) == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )


@pytest.mark.parametrize(
    ("secret_key", "expected"),
    [
        # The English/international page's example key.
        (
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
        ),
        # The current Chinese page masks its key; the signature is of the masked string.
        (
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
        ),
    ],
)
def test_authorization_matches_the_documented_signature(secret_key: str, expected: str) -> None:
    header = signer.authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key=secret_key,
        service="cvm",
        host=HOST,
        content_type=CONTENT_TYPE,
        timestamp=TIMESTAMP,
        payload=PAYLOAD,
    )
    assert header == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        f"tc3_request, SignedHeaders=content-type;host, Signature={expected}"
    )


def test_the_scope_date_is_utc_not_local() -> None:
    # 2019-02-26 00:44:25 in UTC+8 is still the 25th in UTC (Tencent's own warning).
    assert signer.utc_date(TIMESTAMP) == "2019-02-25"


def _signed(secret_key: str, body: bytes, timestamp: int, host: str = "h:1") -> dict[str, str]:
    return {
        "content-type": "application/json",
        "host": host,
        "x-tc-timestamp": str(timestamp),
        "authorization": signer.authorization(
            secret_id="AKIDsim",
            secret_key=secret_key,
            service="hunyuan",
            host=host,
            content_type="application/json",
            timestamp=timestamp,
            payload=body,
        ),
    }


@given(body=st.binary(max_size=200), skew=st.integers(-300, 300))
def test_the_simulator_accepts_what_the_relay_signs(body: bytes, skew: int) -> None:
    now = 1_700_000_000
    verify(_signed("s3cret", body, now + skew), body, {"AKIDsim": "s3cret"}, now)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("key", "AuthFailure.SignatureFailure"),
        ("body", "AuthFailure.SignatureFailure"),
        ("host", "AuthFailure.SignatureFailure"),
        ("stale", "AuthFailure.SignatureExpire"),
        ("secret_id", "AuthFailure.SecretIdNotFound"),
        ("no_auth", "AuthFailure.InvalidAuthorization"),
    ],
)
def test_the_simulator_refuses_any_tampering(change: str, code: str) -> None:
    now = 1_700_000_000
    body = b'{"Model":"hunyuan-lite"}'
    headers = _signed(
        "wrong" if change == "key" else "s3cret", body, now - 301 if change == "stale" else now
    )
    if change == "body":
        body = body.replace(b"lite", b"pro")
    if change == "host":
        headers["host"] = "other:1"
    keys = {"AKIDother": "s3cret"} if change == "secret_id" else {"AKIDsim": "s3cret"}
    if change == "no_auth":
        del headers["authorization"]
    with pytest.raises(Refusal) as refused:
        verify(headers, body, keys, now)
    assert refused.value.code == code


def test_channel_keys_in_both_layouts() -> None:
    assert split_key("AKIDx|sk") == ("AKIDx", "sk")
    assert split_key("1250000000|AKIDx|sk") == ("AKIDx", "sk")
    with pytest.raises(ValueError):
        split_key("only-one-part")
