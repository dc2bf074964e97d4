"""Authorization codes and access tokens as providers keep them: single-use codes bound to
the client, the redirect URI, the PKCE challenge and the person; tokens with an expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    person: dict[str, Any]
    nonce: str = ""
    issued: float = field(default_factory=time.time)


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def verifier_matches(grant: Grant, verifier: str) -> bool:
    """RFC 7636 §4.6; a grant made without a challenge needs no verifier."""
    if not grant.challenge:
        return not verifier
    if not verifier or not 43 <= len(verifier) <= 128:
        return False
    computed = s256(verifier) if grant.method == "S256" else verifier
    return hmac.compare_digest(computed, grant.challenge)


class Grants:
    def __init__(self, code_ttl: float, token_ttl: float) -> None:
        self.code_ttl = code_ttl
        self.token_ttl = token_ttl
        self.codes: dict[str, Grant] = {}
        self.used: set[str] = set()
        self.tokens: dict[str, tuple[dict[str, Any], float]] = {}
        # Tokens issued from each code, revoked if the code is presented again (RFC 6749 §4.1.2).
        self.issued_from: dict[str, list[str]] = {}

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = grant
        return code

    def redeem(self, code: str) -> tuple[Grant | None, str]:
        """(grant, "") or (None, why): unknown, reused (revoking its tokens) or expired."""
        if code in self.used:
            for token in self.issued_from.pop(code, []):
                self.tokens.pop(token, None)
            return None, "used"
        grant = self.codes.pop(code, None)
        if grant is None:
            return None, "unknown"
        self.used.add(code)
        if time.time() - grant.issued > self.code_ttl:
            return None, "expired"
        return grant, ""

    def issue_token(self, code: str, person: dict[str, Any], prefix: str) -> str:
        token = prefix + secrets.token_urlsafe(24)
        self.tokens[token] = (person, time.time() + self.token_ttl)
        self.issued_from.setdefault(code, []).append(token)
        return token

    def person_of(self, authorization: str) -> dict[str, Any] | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        entry = self.tokens.get(token.strip())
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]
