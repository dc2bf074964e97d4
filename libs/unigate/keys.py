"""API keys: generation, hashing and display form."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "sk-"
_ALPHABET = string.ascii_letters + string.digits
_BODY_LENGTH = 48


def generate_api_key() -> str:
    """A new key: ``sk-`` plus 48 base62 characters from the OS CSPRNG (~285 bits)."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))


def hash_api_key(key: str) -> bytes:
    """SHA-256 of the key. Keys are high-entropy, so no salt or slow hash is needed; the
    lookup is by hash, so its timing says nothing about the key itself."""
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    """The part of a key that may be shown back to its owner (``sk-AbCd…``)."""
    return key[:7]


# What stands for the hidden middle of a key; no provider's key contains it.
MASK = "***"


def mask_key(key: str) -> str:
    """A key as it may appear in an error message: enough to recognise, not to use."""
    if len(key) <= 10:
        return MASK
    return f"{key[:5]}{MASK}{key[-4:]}"


def key_fingerprint(key: str) -> str:
    """A stable name for one provider key of a multi-key channel (its health and state are
    kept per key): the first 64 bits of its SHA-256, which identify it without revealing it
    (provider keys are high-entropy), and survive reordering the channel's key list."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]
