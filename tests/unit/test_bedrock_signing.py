"""SigV4 between the relay's Bedrock signer and the Bedrock simulator's verifier: a request
signed by the relay passes; a wrong secret, an unknown key, a tampered body or path, another
region or service, a stale date or a missing session token are refused as AWS refuses them.
Also: the relay's mapping of Bedrock's HTTP errors (fatal, retryable, the client's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from unigate_relay.providers.bedrock.errors import http_error, stream_exception
from unigate_relay.providers.bedrock.signing import KeyFormatError, credentials, signed_headers
from unigate_relay.providers.bedrock.wire import claude_name, invoke_url, model_id
from unigate_sim.bedrock import BedrockError, Key, Received, create_bedrock_app, verify

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {AKID: Key(SECRET)}
REGION = "us-east-1"
BODY = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[]}'
URL = invoke_url(
    "http://127.0.0.1:9", REGION, "anthropic.claude-3-5-sonnet-20241022-v2:0", stream=False
)


def received(url: str, headers: dict[str, str], body: bytes = BODY) -> Received:
    parts = urlsplit(url)
    return Received(
        method="POST",
        raw_path=parts.path,
        query=parts.query,
        headers={"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}},
        body=body,
    )


def signed(key: str = f"{AKID}|{SECRET}", region: str = REGION, url: str = URL) -> Received:
    headers = signed_headers(
        credentials(key), region, url, BODY, {"Content-Type": "application/json"}
    )
    return received(url, headers)


def refused(request: Received, *, now: datetime | None = None) -> BedrockError:
    with pytest.raises(BedrockError) as caught:
        verify(request, KEYS, REGION, now or datetime.now(UTC))
    return caught.value


def test_relay_signature_is_accepted() -> None:
    request = signed()
    # The model id's ":" stays percent-encoded in the signed, sent path.
    assert request.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    assert verify(request, KEYS, REGION, datetime.now(UTC)) == AKID


def test_wrong_secret_unknown_key_and_tampering_are_refused() -> None:
    wrong = refused(signed(f"{AKID}|{SECRET[:-1]}X"))
    assert (wrong.kind, wrong.status) == ("InvalidSignatureException", 403)
    assert wrong.message.startswith("The request signature we calculated does not match")
    unknown = refused(signed(f"AKIAUNKNOWN000000000|{SECRET}"))
    assert (unknown.kind, unknown.status) == ("UnrecognizedClientException", 403)
    good = signed()
    tampered = Received(good.method, good.raw_path, good.query, good.headers, BODY + b" ")
    assert refused(tampered).kind == "InvalidSignatureException"
    moved = Received(
        good.method, good.raw_path.replace("invoke", "invoke-x"), "", good.headers, BODY
    )
    assert refused(moved).kind == "InvalidSignatureException"
    unsigned = dict(good.headers)
    del unsigned["authorization"]
    assert refused(Received("POST", good.raw_path, "", unsigned, BODY)).kind == (
        "MissingAuthenticationTokenException"
    )


def test_scope_of_another_region_or_service_is_refused() -> None:
    region = refused(signed(region="eu-west-1"))
    assert region.kind == "InvalidSignatureException" and "valid region" in region.message
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={})
    SigV4Auth(Credentials(AKID, SECRET), "s3", REGION).add_auth(request)
    service = refused(received(URL, dict(request.headers.items())))
    assert service.kind == "InvalidSignatureException"
    assert "correct service: 'bedrock'" in service.message


def test_stale_or_future_dates_are_refused() -> None:
    request = signed()
    now = datetime.now(UTC)
    # Within five minutes either way is fine (clock skew AWS tolerates).
    assert verify(request, KEYS, REGION, now + timedelta(minutes=4)) == AKID
    stale = refused(request, now=now + timedelta(minutes=6))
    assert stale.kind == "InvalidSignatureException" and stale.message.startswith(
        "Signature expired"
    )
    early = refused(request, now=now - timedelta(minutes=6))
    assert early.message.startswith("Signature not yet current")


def test_session_token_is_signed_and_required() -> None:
    keys = {AKID: Key(SECRET, "FQoGZXIvYXdzEXAMPLETOKEN")}
    with_token = signed(f"{AKID}|{SECRET}|FQoGZXIvYXdzEXAMPLETOKEN")
    assert with_token.headers["x-amz-security-token"] == "FQoGZXIvYXdzEXAMPLETOKEN"
    assert verify(with_token, keys, REGION, datetime.now(UTC)) == AKID
    with pytest.raises(BedrockError) as missing:
        verify(signed(), keys, REGION, datetime.now(UTC))
    assert missing.value.kind == "UnrecognizedClientException"


def test_key_format() -> None:
    with pytest.raises(KeyFormatError):
        credentials("just-one-part")
    with pytest.raises(KeyFormatError):
        credentials(f"{AKID}|")


async def test_simulator_answers_refusals_in_bedrock_shape() -> None:
    app = create_bedrock_app({AKID: SECRET})
    transport = httpx.ASGITransport(app=app)
    url = invoke_url(
        "http://bedrock.test", REGION, "anthropic.claude-3-5-sonnet-20241022-v2:0", stream=False
    )
    body = orjson.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport) as http:
        good = signed_headers(credentials(f"{AKID}|{SECRET}"), REGION, url, body, headers)
        ok = await http.post(httpx.URL(url), content=body, headers=good)
        assert ok.status_code == 200, ok.text
        assert ok.json()["content"] == [{"type": "text", "text": "Echo: hi"}]
        assert ok.headers["x-amzn-bedrock-output-token-count"] == str(
            ok.json()["usage"]["output_tokens"]
        )
        bad = signed_headers(credentials(f"{AKID}|not-the-secret"), REGION, url, body, headers)
        denied = await http.post(httpx.URL(url), content=body, headers=bad)
    assert denied.status_code == 403
    assert denied.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException:")
    assert set(denied.json()) == {"message"}
    assert len(app.state.calls) == 1  # the refused request never reached Claude
    error = http_error(
        denied.status_code,
        denied.content,
        CIMultiDictProxy(CIMultiDict(denied.headers.items())),
        [f"{AKID}|not-the-secret"],
    )
    assert error.fatal and error.error.code == "upstream_auth_failed"


def _error(status: int, kind: str, message: str = "m") -> tuple[bool, bool, int]:
    headers = CIMultiDictProxy(CIMultiDict({"x-amzn-ErrorType": f"{kind}:http://x/"}))
    err = http_error(status, orjson.dumps({"message": message}), headers, [])
    return err.fatal, err.retryable, err.error.http_status


def test_http_errors_map_to_failover_classes() -> None:
    assert _error(403, "UnrecognizedClientException") == (True, True, 502)
    assert _error(403, "AccessDeniedException") == (True, True, 502)
    assert _error(429, "ThrottlingException") == (False, True, 429)
    assert _error(429, "ModelNotReadyException") == (False, True, 503)
    assert _error(503, "ServiceUnavailableException") == (False, True, 503)
    assert _error(500, "InternalServerException") == (False, True, 502)
    assert _error(400, "ValidationException") == (False, False, 400)
    throttled = stream_exception("throttlingException", "Too many requests", [])
    assert throttled.retryable and throttled.error.http_status == 429
    invalid = stream_exception("validationException", "bad", [])
    assert not invalid.retryable and invalid.error.http_status == 400
    assert stream_exception("modelStreamErrorException", "x", []).retryable


def test_model_ids() -> None:
    assert model_id("claude-3-5-sonnet-20241022", {}) == (
        "anthropic.claude-3-5-sonnet-20241022-v2:0"
    )
    profile = "us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert model_id(profile, {}) == profile
    assert model_id("mine", {"model_ids": {"mine": profile}}) == profile
    assert claude_name(profile) == "claude-sonnet-4-20250514"
    assert claude_name("anthropic.claude-opus-4-1-20250805-v1:0") == "claude-opus-4-1-20250805"
