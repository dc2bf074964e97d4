from __future__ import annotations

import string

import pytest
from cryptography.exceptions import InvalidTag

from unigate.crypto import SecretKeyMissing, decrypt_secret, encrypt_secret
from unigate.keys import generate_api_key, hash_api_key, mask_key


def test_api_key_format_and_uniqueness() -> None:
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("sk-") and len(key) == 51
        assert set(key[3:]) <= set(string.ascii_letters + string.digits)


def test_hash_is_stable_and_mask_hides_the_body() -> None:
    key = generate_api_key()
    assert hash_api_key(key) == hash_api_key(key) != hash_api_key(key + "x")
    assert key[10:40] not in mask_key(key)


def test_secrets_round_trip_and_fail_with_the_wrong_key() -> None:
    blob = encrypt_secret("sk-provider-secret", "k1")
    assert b"sk-provider-secret" not in blob
    assert decrypt_secret(blob, "k1") == "sk-provider-secret"
    with pytest.raises(InvalidTag):
        decrypt_secret(blob, "k2")
    with pytest.raises(SecretKeyMissing):
        encrypt_secret("x", "")
