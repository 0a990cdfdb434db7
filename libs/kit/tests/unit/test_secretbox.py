"""Signing secrets at rest: encrypted with the first key, readable with any, moved by re-encryption."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from leadflow_kit.secretbox import DEVELOPMENT_KEY, SecretBox, parse_keys


def test_a_secret_is_stored_encrypted_and_read_back() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    token = box.encrypt("whsec_abc")
    assert "whsec_abc" not in token and box.decrypt(token) == "whsec_abc"
    assert box.encrypt("whsec_abc") != token  # a fresh IV each time


def test_after_a_key_rotation_old_values_stay_readable_and_reencrypt_moves_them() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt("whsec_abc")
    rotated = SecretBox([new, old])
    assert rotated.decrypt(token) == "whsec_abc"
    moved = rotated.reencrypt(token)
    assert moved is not None and SecretBox([new]).decrypt(moved) == "whsec_abc"
    assert rotated.reencrypt(moved) is None  # already under the first key
    with pytest.raises(ValueError, match="no configured encryption key"):
        SecretBox([new]).decrypt(token)


def test_keys_are_parsed_newest_first_and_a_bad_one_is_named() -> None:
    assert parse_keys(f" {DEVELOPMENT_KEY} ,") == [DEVELOPMENT_KEY]
    with pytest.raises(ValueError, match="encryption key 2"):
        parse_keys(f"{DEVELOPMENT_KEY},not-a-key")
