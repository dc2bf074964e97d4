"""The ID-token checks of the OIDC login (``unigate_auth.oauth.oidc.verify_id_token``) against
forgeries the simulator does not make: ``alg: none``, an HMAC keyed with the public key, a
JWE, several audiences without ``azp``, missing claims, a key the JWKS does not hold."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from unigate_auth.oauth import oidc
from unigate_auth.oauth.common import ProviderRefused, ProviderUnreachable

ISSUER = "https://idp.example"
CLIENT = "unigate"
NONCE = "n-0S6_WzA2Mj"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
PROVIDER = oidc.Provider(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/authorize",
    token_endpoint=f"{ISSUER}/token",
    userinfo_endpoint=f"{ISSUER}/userinfo",
    # Nothing listens there: a re-read of the key set fails as unreachable.
    jwks_uri="http://127.0.0.1:9/jwks",
    algorithms=("RS256", "ES256"),
    basic_auth=True,
)


@pytest.fixture(autouse=True)
def key_set() -> Iterator[None]:
    oidc._cache[PROVIDER.jwks_uri] = (time.monotonic(), {"keys": [KEY.as_dict(private=False)]})
    yield
    oidc._cache.pop(PROVIDER.jwks_uri, None)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "248289761001", "aud": CLIENT, "exp": now + 300}
    base |= {"iat": now, "nonce": NONCE}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, Any], *, key: Any = KEY, header: dict[str, Any] | None = None) -> str:
    return jwt.encode(header or {"alg": "RS256", "kid": "k1"}, payload, key)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def verify(token: str) -> dict[str, Any]:
    return await oidc.verify_id_token(PROVIDER, token, client_id=CLIENT, nonce=NONCE)


async def test_a_good_token_passes_with_one_or_several_audiences() -> None:
    assert (await verify(signed(claims())))["sub"] == "248289761001"
    several = claims(aud=[CLIENT, "other"], azp=CLIENT)
    assert (await verify(signed(several)))["azp"] == CLIENT


@pytest.mark.parametrize(
    "payload",
    [
        claims(aud=[CLIENT, "other"]),  # several audiences, no azp
        claims(aud=[CLIENT, "other"], azp="other"),
        claims(sub=None),
        claims(nonce=None),
        claims(exp=None),
        claims(iss=ISSUER + "/"),
        claims(exp=int(time.time()) - 3600),
    ],
)
async def test_claims_that_do_not_hold_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ProviderRefused):
        await verify(signed(payload))


async def test_alg_none_hmac_with_the_public_key_and_jwe_are_refused() -> None:
    body = b64(orjson.dumps(claims()))
    with pytest.raises(ProviderRefused):
        none_header = b64(orjson.dumps({"alg": "none"}))
        await verify(f"{none_header}.{body}.")
    public_as_secret = OctKey.import_key(orjson.dumps(KEY.as_dict(private=False)))
    with pytest.raises(ProviderRefused):
        await verify(signed(claims(), key=public_as_secret, header={"alg": "HS256", "kid": "k1"}))
    with pytest.raises(ProviderRefused):
        await verify("a.b.c.d.e")
    tampered = signed(claims()).split(".")
    tampered[1] = b64(orjson.dumps(claims(sub="someone-else")))
    with pytest.raises(ProviderRefused):
        await verify(".".join(tampered))


async def test_a_key_the_set_does_not_hold_rereads_it_then_fails() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k2", "alg": "RS256"})
    with pytest.raises((ProviderRefused, ProviderUnreachable)):
        await verify(signed(claims(), key=other, header={"alg": "RS256", "kid": "k2"}))
    # Signed by another key under a kid the set knows: a bad signature, no re-read needed.
    with pytest.raises(ProviderRefused):
        await verify(signed(claims(), key=other))
