"""Encryption of provider secrets at rest (AES-256-GCM, key derived from ``SECRET_KEY``)."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_VERSION = b"\x01"


class SecretKeyMissing(RuntimeError):
    """Raised when a secret must be encrypted or decrypted but ``SECRET_KEY`` is empty."""


def _aead(secret_key: str) -> AESGCM:
    if not secret_key:
        raise SecretKeyMissing("SECRET_KEY is not set; it is needed to store provider keys")
    return AESGCM(hashlib.sha256(secret_key.encode()).digest())


def encrypt_secret(plaintext: str, secret_key: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + _aead(secret_key).encrypt(nonce, plaintext.encode(), _VERSION)


def decrypt_secret(blob: bytes, secret_key: str) -> str:
    if blob[:1] != _VERSION:
        raise ValueError("unknown secret format")
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    return _aead(secret_key).decrypt(nonce, ciphertext, _VERSION).decode()
