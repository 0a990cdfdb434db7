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
    assert Settings(**PRODUCTION, demo_webhook_secret=own).demo_webhook_secret.get_secret_value() == own
    # Development keeps the demo working; the secret stays out of reprs.
    assert Settings().demo_webhook_secret.get_secret_value() == DEV_DEMO_WEBHOOK_SECRET
    assert DEV_DEMO_WEBHOOK_SECRET not in repr(Settings())


def test_routing_refuses_plain_smtp_in_production_and_never_shows_its_secrets() -> None:
    own = {**PRODUCTION, "demo_webhook_secret": "whsec_" + "B" * 43, "smtp_host": "smtp.example.com"}
    with pytest.raises(ValidationError, match="smtp_security"):
        Settings(**own, smtp_security="none")
    settings = Settings(**own, smtp_password="hunter2", notify_slack_webhook_url="https://hooks.slack.com/services/T/B/x")
    assert settings.smtp_security == "starttls"
    assert "hunter2" not in repr(settings) and "hooks.slack.com" not in repr(settings)
