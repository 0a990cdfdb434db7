"""Signing secrets and the Standard Webhooks signature headers (HMAC-SHA256 via ``standardwebhooks``);
secrets rest encrypted (``leadflow_kit.secretbox``), and rotate with an overlap during which both sign."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from leadflow_kit.db import Database
from leadflow_kit.secretbox import SecretBox
from leadflow_kit.version import VERSION
from leadflow_kit.webhooks.store import webhook_transaction

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    # The spec forbids '.' in ids; a uuid's hex has none.
    return f"msg_{uuid.uuid4().hex}"


def signature_header(signing_secrets: Sequence[str], webhook_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<sig>`` for each secret, space-separated: during a rotation both keys sign."""
    return " ".join(Webhook(s).sign(webhook_id, timestamp, body) for s in signing_secrets)


def signed_headers(
    signing_secrets: Sequence[str], webhook_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": f"LeadFlow-Webhooks/{VERSION}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(signing_secrets, webhook_id, timestamp, body),
    }


def active_secrets(secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime) -> list[str]:
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous]
    return [secret]


async def reencrypt_webhook_secrets(db: Database, box: SecretBox) -> int:
    """Move every subscription's secrets under the box's first key (after a key rotation); returns
    how many subscriptions changed. Rows already under the first key are left as they are."""
    changed = 0
    async with webhook_transaction(db) as store:
        for stored in await store.secrets_for_update():
            secret = box.reencrypt(stored.secret_ciphertext)
            previous = (None if stored.previous_secret_ciphertext is None
                        else box.reencrypt(stored.previous_secret_ciphertext))
            if secret is None and previous is None:
                continue
            await store.set_secrets(stored.subscription_id, secret_ciphertext=secret,
                                    previous_secret_ciphertext=previous)
            changed += 1
    return changed
