"""The console's settings (prefix ``CONSOLE_``): its database, the five services it calls and their keys,
sessions and sign-in limits."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr, model_validator

from leadflow_kit.secretbox import DEVELOPMENT_KEY, SecretBox, parse_keys
from leadflow_kit.settings import MIN_PRODUCTION_KEY_LENGTH, ServiceSettings, service_config

SERVICES: tuple[str, ...] = ("capture", "enrichment", "scoring", "routing", "sla")


class Settings(ServiceSettings):
    model_config = service_config("CONSOLE_")

    service_name: str = "console"
    port: int = 8000
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_console"
    database_pool_size: int = 5

    # Signs session cookies and derives CSRF tokens. Unset in development: a random one per process
    # (sessions end when the console restarts); required, and long, anywhere else.
    secret_key: SecretStr | None = None

    capture_url: str = "http://127.0.0.1:8001"
    enrichment_url: str = "http://127.0.0.1:8002"
    scoring_url: str = "http://127.0.0.1:8003"
    routing_url: str = "http://127.0.0.1:8004"
    sla_url: str = "http://127.0.0.1:8005"
    # Capture as browsers and marketers' web pages reach it (the embed snippet, the preview's posts), when
    # that is not the address the console calls it on (e.g. an internal one); default: capture_url.
    capture_public_url: str | None = None
    # The console's own key on each service, scoped to what its users' roles need (docs/security.md). A key
    # given here wins; without one, `serve` uses the key `provision-keys` minted and keeps in the database.
    capture_api_key: SecretStr | None = None
    enrichment_api_key: SecretStr | None = None
    scoring_api_key: SecretStr | None = None
    routing_api_key: SecretStr | None = None
    sla_api_key: SecretStr | None = None
    service_timeout_seconds: float = Field(default=10.0, gt=0)
    # Fernet keys that encrypt the service keys `provision-keys` keeps in the database, comma-separated,
    # newest first: the first encrypts, all decrypt. Required in production unless all five keys are given
    # above; elsewhere a fixed development key stands in.
    encryption_keys: SecretStr | None = None

    session_max_age_seconds: int = Field(default=12 * 3600, gt=0)
    # Sign-in lockout: this many failures in a row lock the account for lockout_seconds.
    sign_in_max_failures: int = Field(default=5, gt=0)
    sign_in_lockout_seconds: float = Field(default=900.0, gt=0)

    # `seed-demo` (run by `make up`) creates the user `admin` with the password in this file when the
    # console has no admin yet.
    first_admin_password_file: str | None = None

    @model_validator(mode="after")
    def _secret_key_outside_development(self) -> Settings:
        if self.secret_key is None:
            if self.environment != "development":
                raise ValueError("secret_key is required outside development (it signs session cookies)")
            self.secret_key = SecretStr(secrets.token_urlsafe(32))
        elif self.environment == "production" and len(self.secret_key.get_secret_value()) < MIN_PRODUCTION_KEY_LENGTH:
            raise ValueError(f"secret_key must be at least {MIN_PRODUCTION_KEY_LENGTH} characters in production")
        return self

    @model_validator(mode="after")
    def _encryption_keys_in_production(self) -> Settings:
        keys = self._encryption_keys()
        if self.environment == "production" and self.services_without_key() and (not keys or DEVELOPMENT_KEY in keys):
            raise ValueError("encryption_keys must be set to your own Fernet key(s) in production (they encrypt "
                             "the service keys provision-keys keeps), unless every <SERVICE>_API_KEY is given")
        return self

    def _encryption_keys(self) -> list[str]:
        return parse_keys(self.encryption_keys.get_secret_value()) if self.encryption_keys else []

    def secret_box(self) -> SecretBox:
        return SecretBox(self._encryption_keys() or [DEVELOPMENT_KEY])

    def services_without_key(self) -> list[str]:
        """The services whose key is not given in the settings (``provision-keys`` keeps those)."""
        return [service for service in SERVICES if self.service_api_key(service) is None]

    @property
    def secure_cookies(self) -> bool:
        return self.environment != "development"

    def service_url(self, service: str) -> str:
        url: str = getattr(self, f"{service}_url")
        return url.rstrip("/")

    def capture_public(self) -> str:
        return (self.capture_public_url or self.capture_url).rstrip("/")

    def service_api_key(self, service: str) -> str | None:
        key: SecretStr | None = getattr(self, f"{service}_api_key")
        return key.get_secret_value() if key is not None else None

    def signing_key(self) -> str:
        assert self.secret_key is not None  # set by the validator
        return self.secret_key.get_secret_value()
