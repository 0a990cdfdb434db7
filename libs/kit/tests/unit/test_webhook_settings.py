"""What a service that sends webhooks refuses to start with in production."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from leadflow_kit.secretbox import DEVELOPMENT_KEY
from leadflow_kit.webhooks import WebhookSettings

PRODUCTION: dict[str, Any] = {"environment": "production", "admin_api_key": "k" * 40}
OWN_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({}, "webhook_encryption_keys must be set"),
        ({"webhook_encryption_keys": DEVELOPMENT_KEY}, "webhook_encryption_keys must be set"),
        ({"webhook_encryption_keys": f"{OWN_KEY},{DEVELOPMENT_KEY}"}, "webhook_encryption_keys must be set"),
        ({"webhook_encryption_keys": "REPLACE_ME"}, "encryption key 1 is not a Fernet key"),
        ({"webhook_encryption_keys": OWN_KEY, "webhook_allow_http": True}, "webhook_allow_http"),
    ],
)
def test_production_refuses_missing_or_development_keys_and_plain_http(overrides: dict[str, Any],
                                                                       complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint) as refused:
        WebhookSettings(**PRODUCTION, **overrides)
    # The error names the setting, never the values it was given.
    assert OWN_KEY not in str(refused.value)


def test_production_starts_with_its_own_key_and_development_needs_none() -> None:
    settings = WebhookSettings(**PRODUCTION, webhook_encryption_keys=OWN_KEY)
    assert settings.secret_box().decrypt(settings.secret_box().encrypt("whsec_x")) == "whsec_x"
    assert WebhookSettings().secret_box().encrypt("whsec_x") != "whsec_x"

