"""A generic OpenID Connect provider (OpenID Connect Core 1.0 and Discovery 1.0; PKCE by
RFC 7636).

The provider is described by its discovery document (option ``OidcWellKnown``): ``issuer``,
``authorization_endpoint``, ``token_endpoint``, ``userinfo_endpoint``, ``jwks_uri``. The
options ``OidcAuthorizationEndpoint``/``OidcTokenEndpoint``/``OidcUserinfoEndpoint`` (One
API's) override the document's endpoints; the issuer and the keys come only from it, since
without them an ID token cannot be checked.

The code is exchanged at the token endpoint (form-encoded, RFC 6749 §4.1.3, with the PKCE
verifier; the client authenticates with HTTP Basic unless the document lists only
``client_secret_post``). The answer's ``id_token`` must be a JWS signed by a key of the
provider's JWKS with an asymmetric algorithm it announces, whose ``iss`` is the issuer,
``aud`` holds our client id (and ``azp`` is ours when there are several), ``exp`` is in the
future, and ``nonce`` is the one this flow sent (joserfc checks signature and claims). The
person is the token's ``sub``; the userinfo answer (asked with the access token) must name
the same ``sub`` (Core §5.3.4), else the login is refused as a substitution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from unigate_auth.oauth.common import (
    ExternalIdentity,
    ProviderRefused,
    ProviderUnreachable,
    call,
    text,
)

# Asymmetric JWS algorithms only: an HMAC "signature" keyed with a public key is forgeable.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# Clock skew allowed on exp/iat/nbf.
LEEWAY_SECONDS = 60
# Discovery documents and key sets are re-read this often (a key rotation is also picked up
# at once: an unknown `kid` re-reads the key set before refusing).
CACHE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    basic_auth: bool


_cache: dict[str, tuple[float, Any]] = {}


async def _json(url: str, what: str, *, fresh: bool = False) -> Any:
    hit = _cache.get(url)
    if hit and not fresh and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    status, body = await call("GET", url, what=what)
    if status != 200 or not isinstance(body, dict):
        raise ProviderUnreachable(f"{what} answered {status}")
    _cache[url] = (time.monotonic(), body)
    return body


async def discover(options: dict[str, str]) -> Provider:
    well_known = options.get("OidcWellKnown", "")
    if not well_known:
        raise ProviderRefused("OIDC login needs the option OidcWellKnown (the discovery URL)")
    doc = await _json(well_known, "the OIDC discovery document")
    announced = doc.get("id_token_signing_alg_values_supported")
    algorithms = tuple(
        a for a in ASYMMETRIC_ALGORITHMS if not isinstance(announced, list) or a in announced
    )
    methods = doc.get("token_endpoint_auth_methods_supported")
    provider = Provider(
        issuer=text(doc, "issuer"),
        authorization_endpoint=options.get("OidcAuthorizationEndpoint")
        or text(doc, "authorization_endpoint"),
        token_endpoint=options.get("OidcTokenEndpoint") or text(doc, "token_endpoint"),
        userinfo_endpoint=options.get("OidcUserinfoEndpoint") or text(doc, "userinfo_endpoint"),
        jwks_uri=text(doc, "jwks_uri"),
        algorithms=algorithms,
        # Discovery's default is client_secret_basic.
        basic_auth=not (isinstance(methods, list) and "client_secret_basic" not in methods),
    )
    if not (provider.issuer and provider.authorization_endpoint and provider.token_endpoint):
        raise ProviderUnreachable("the OIDC discovery document lacks issuer or endpoints")
    if not provider.jwks_uri or not algorithms:
        raise ProviderUnreachable("the OIDC discovery document names no usable signing keys")
    return provider


def authorize_url(
    provider: Provider,
    client_id: str,
    redirect_uri: str,
    state: str,
    nonce: str,
    challenge: str,
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return f"{provider.authorization_endpoint}{separator}{query}"


async def _keys(provider: Provider, *, fresh: bool) -> KeySet:
    body = await _json(provider.jwks_uri, "the OIDC key set", fresh=fresh)
    try:
        return KeySet.import_key_set(body)
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProviderUnreachable("the OIDC key set could not be read") from None


async def verify_id_token(
    provider: Provider, id_token: str, *, client_id: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims, if its signature and claims hold (module docstring)."""
    if id_token.count(".") != 2:  # a JWS in compact form; never a JWE or anything else
        raise ProviderRefused("the ID token is not a signed JWT")
    token = None
    for fresh in (False, True):
        try:
            token = jwt.decode(
                id_token, await _keys(provider, fresh=fresh), algorithms=provider.algorithms
            )
            break
        except JoseError as exc:
            # An unknown key id may be a rotation since the key set was read: read it again.
            if fresh or not isinstance(exc, InvalidKeyIdError):
                raise ProviderRefused(
                    f"the ID token's signature is not valid ({exc.error})"
                ) from None
    assert token is not None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise ProviderRefused(f"the ID token was refused: {exc.description or exc.error}") from None
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise ProviderRefused("the ID token was issued to another party (azp)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise ProviderRefused("the ID token names no subject")
    return claims


async def identity(
    provider: Provider,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    verifier: str,
    nonce: str,
) -> ExternalIdentity:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if provider.basic_auth:
        auth: tuple[str, str] | None = (client_id, client_secret)
    else:
        auth = None
        form |= {"client_id": client_id, "client_secret": client_secret}
    status, body = await call(
        "POST", provider.token_endpoint, what="the OIDC provider", data=form, auth=auth
    )
    id_token = text(body, "id_token")
    if status != 200 or not id_token:
        raise ProviderRefused(
            f"the OIDC provider refused the code: {text(body, 'error') or status}"
        )
    claims = await verify_id_token(provider, id_token, client_id=client_id, nonce=nonce)
    name = text(claims, "name") or text(claims, "preferred_username")
    access_token = text(body, "access_token")
    if access_token and provider.userinfo_endpoint:
        status, info = await call(
            "GET",
            provider.userinfo_endpoint,
            what="the OIDC provider",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if status != 200:
            raise ProviderRefused(f"the OIDC provider's userinfo refused the token ({status})")
        if text(info, "sub") != claims["sub"]:
            raise ProviderRefused("the OIDC userinfo names another subject than the ID token")
        name = name or text(info, "name") or text(info, "preferred_username")
    return ExternalIdentity(claims["sub"], name)
