"""Routing refuses the published demo webhook secret in production."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from leadflow_routing.settings import DEV_DEMO_WEBHOOK_SECRET, Settings

PRODUCTION = {"environment": "production", "admin_api_key": "k" * 40,
              "webhook_encryption_keys": Fernet.generate_key().decode()}


def test_routing_refuses_the_demo_webhook_secret_in_production() -> None:
    with pytest.raises(ValidationError, match="demo_webhook_secret"):
        Settings(**PRODUCTION)
    own = "whsec_" + "B" * 43
    assert Settings(**PRODUCTION, demo_webhook_secret=own).demo_webhook_secret == own
    assert Settings().demo_webhook_secret == DEV_DEMO_WEBHOOK_SECRET  # development keeps the demo working
