"""Capture's settings refuse what would let a request's headers steer it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadflow_capture.settings import Settings

PRODUCTION = {"environment": "production", "admin_api_key": "k" * 32, "person_key_secret": "p" * 32}


def test_production_requires_a_public_base_url():
    with pytest.raises(ValidationError, match="public_base_url is required"):
        Settings(**PRODUCTION)
    assert Settings(**PRODUCTION, public_base_url="https://capture.example.com").public_base_url
    assert Settings(environment="development").public_base_url is None


def test_trusted_proxies_are_addresses_or_networks():
    assert Settings(trusted_proxies=["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]).trusted_proxies
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["proxy.internal"])


def test_the_old_trust_everything_switch_is_refused_loudly():
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trust_forwarded_for=True)
