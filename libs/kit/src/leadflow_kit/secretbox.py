"""Secrets at rest: encrypted with an envelope key from settings (Fernet, several keys for rotation).

The first key encrypts; every key decrypts, so adding a new key in front keeps older rows readable.
``SecretBox.reencrypt`` moves a value to the first key; a value the first key already opens is
left alone, so re-encrypting a whole table is idempotent and can run while the service runs.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Used only when no key is configured outside production; production refuses it.
DEVELOPMENT_KEY = base64.urlsafe_b64encode(b"leadflow-development-only-key-32").decode()


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._primary = Fernet(keys[0])
        self._all = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._primary.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext; ValueError when no configured key opens ``token``."""
        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("no configured encryption key opens this value") from None

    def reencrypt(self, token: str) -> str | None:
        """``token`` under the first key, or None when it already is."""
        try:
            self._primary.decrypt(token.encode())
            return None
        except InvalidToken:
            return self.encrypt(self.decrypt(token))


def parse_keys(value: str) -> list[str]:
    """Comma-separated Fernet keys, newest first; ValueError names the bad one by position."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"encryption key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys
