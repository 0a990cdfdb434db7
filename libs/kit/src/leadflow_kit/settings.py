"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A bootstrap key is typed by people; 32 characters of it is what a generated key's secret carries.
MIN_PRODUCTION_KEY_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-admin-key", "admin"})


class ServiceSettings(BaseSettings):
    """Subclasses set ``model_config = service_config("CAPTURE_")`` and a default ``port``."""

    # A settings error must not print the values it was given: they include keys and secrets.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    service_name: str = "service"
    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow"
    # Connections kept open. Beyond it the pool opens as many again, but closes each one after use,
    # and a new connection costs PostgreSQL and asyncpg a type-introspection round: capture under
    # load (≈ 9 requests in the database at once at 100 leads/s) reopened 4 connections a second at 10.
    database_pool_size: int = 20
    # The event pipeline's own connections (``Platform.pipeline_db``, planned once: db.PIPELINE_PLANNING):
    # consumer batches, capture's grouped submissions, outbox deletes and webhook deliveries take a few at a time.
    database_pipeline_pool_size: int = 10
    # How PostgreSQL compresses the large values these connections write (an event's body in the outbox, a
    # lead's JSON, a webhook's payload): pglz, PostgreSQL's default, was its top function at the benchmark's
    # saturation step, 8 % of its CPU (docs/performance.md, session 24); lz4 compresses several times faster.
    # Needs a PostgreSQL built with lz4 (the official images and the major managed services are); "pglz",
    # PostgreSQL's own default, is for a server without it.
    database_toast_compression: Literal["lz4", "pglz"] = "lz4"

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = ""
    # With fetch_min_bytes=1 the broker answers a fetch as soon as one record is there; the wait
    # only bounds an idle fetch. A short wait bought no latency (make bench's floor: the same p50
    # at 10 ms and 500 ms) and cost a tenth of a core per idle stack in fetch round trips.
    kafka_fetch_max_wait_ms: int = 500
    # The broker answers a fetch once this many bytes wait (or the wait above is over). 1: at once, for a
    # consumer on a lead's path to its rep. A consumer off that path may take its events in batches.
    kafka_fetch_min_bytes: int = Field(default=1, ge=1)
    kafka_max_poll_records: int = 200
    kafka_session_timeout_ms: int = 10000
    kafka_request_timeout_ms: int = 5000
    # How every Kafka client connects (leadflow_kit.kafka.kafka_client_options). Managed Kafka asks
    # for SASL_SSL with SCRAM (or PLAIN); the CA file is only needed for a private CA, else the
    # system's CAs verify the broker. Certfile and keyfile are a client certificate (mutual TLS).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = None
    kafka_ssl_certfile: FilePath | None = None
    kafka_ssl_keyfile: FilePath | None = None

    # Partitions of one poll handled side by side, each in its own transaction (and pooled
    # connection): more than the pool holds only churns connections on a small machine.
    consumer_max_concurrent_partitions: int = 4
    # One transaction for every partition of a poll instead of one per partition: each transaction
    # costs its statements and a commit's fsync whatever its size, and at moderate rates a poll holds
    # a lead or two per partition (make bench at 100 leads/s: sla's statements per lead 5.7 -> 1.5-1.8).
    # A failing poll falls back to partition by partition.
    consumer_transaction_per_poll: bool = True
    # Offsets are committed to Kafka at most this often (and when partitions are revoked, and at stop),
    # not after every poll: a commit is a broker round trip the next poll waited for, and a write to
    # __consumer_offsets. What a crash loses is only where a restarted consumer resumes: the events it
    # gets again are in its inbox, so their effects are not repeated. 0 commits after every poll.
    consumer_commit_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    # Bigger batches when CPU is short: while the share of wall time some process waited for a CPU (Linux's
    # pressure stall information, leadflow_kit.pressure) is at least consumer_linger_cpu_pressure, a poll
    # that returned records keeps polling up to consumer_linger_ms for more before they are handled. A batch
    # costs its transaction, its round trips and its fsync whatever its size, so on a full machine the hops
    # that could keep up alone hand their CPU to the busiest (make bench at 100 leads/s: docs/performance.md);
    # on a machine with CPU to spare no event waits. 0 ms, or a kernel without PSI: never.
    consumer_linger_ms: float = Field(default=15.0, ge=0, le=1000)
    consumer_linger_cpu_pressure: float = Field(default=0.5, ge=0, le=1)
    # Attempts at an event whose handler fails while the database answers; then it is dead-lettered.
    # An outage (database or broker unreachable, a deadlock, a timeout) never counts: the partition
    # waits and retries with backoff, from consumer_retry_backoff_seconds doubling up to
    # consumer_retry_max_backoff_seconds, for as long as the outage lasts.
    consumer_max_attempts: int = 4
    consumer_retry_backoff_seconds: float = 0.05
    consumer_retry_max_backoff_seconds: float = 5.0
    outbox_poll_interval_seconds: float = 1.0
    outbox_batch_size: int = 500

    admin_api_key: SecretStr | None = None
    # Host header values served (Starlette's TrustedHostMiddleware; "*.example.com" allowed); any other
    # Host is a 400. ["*"] serves every Host.
    trusted_hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    # Retention (docs/runbook.md, "Retention"): a sweeper deletes expired rows in batches.
    retention_sweep_interval_seconds: float = Field(default=600.0, gt=0)
    retention_batch_size: int = Field(default=1000, gt=0)
    # The longest an event can come back after it was handled: a dead letter replayed just before the
    # DLQ topic drops it (Kafka's default retention), or a consumer group reset to the oldest record.
    dlq_replay_window_days: float = Field(default=7.0, gt=0)
    # The inbox remembers handled events for longer than that, so a replay is never handled twice.
    inbox_retention_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _inbox_outlives_the_replay_window(self) -> ServiceSettings:
        if self.inbox_retention_days <= self.dlq_replay_window_days:
            raise ValueError(
                f"inbox_retention_days ({self.inbox_retention_days}) must exceed dlq_replay_window_days "
                f"({self.dlq_replay_window_days}): a replayed event would otherwise be handled twice"
            )
        return self

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile",
                     "kafka_ssl_certfile", "kafka_ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A deployment template renders an unused setting as an empty variable.
        return None if value == "" else value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> ServiceSettings:
        # A setting the chosen protocol would ignore is refused too: it means the protocol is not the
        # one intended (a password set for PLAINTEXT would otherwise connect unauthenticated).
        protocol = self.kafka_security_protocol
        sasl = {"kafka_sasl_mechanism": self.kafka_sasl_mechanism, "kafka_sasl_username": self.kafka_sasl_username,
                "kafka_sasl_password": self.kafka_sasl_password}
        ssl = {"kafka_ssl_cafile": self.kafka_ssl_cafile, "kafka_ssl_certfile": self.kafka_ssl_certfile,
               "kafka_ssl_keyfile": self.kafka_ssl_keyfile}
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if not value]
            if missing:
                raise ValueError(f"kafka_security_protocol {protocol} needs {', '.join(missing)}")
        else:
            ignored = [name for name, value in sasl.items() if value is not None]
            if ignored:
                raise ValueError(f"{', '.join(ignored)} set, but kafka_security_protocol {protocol} uses no SASL")
        if protocol.endswith("SSL"):
            if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
                raise ValueError("kafka_ssl_keyfile needs kafka_ssl_certfile (the client certificate it belongs to)")
        else:
            ignored = [name for name, value in ssl.items() if value is not None]
            if ignored:
                raise ValueError(f"{', '.join(ignored)} set, but kafka_security_protocol {protocol} uses no TLS")
        return self

    # The body limit of every route that declares none (leadflow_kit.bodies); bigger only where needed.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> ServiceSettings:
        if self.environment == "production":
            key = self.admin_api_key.get_secret_value() if self.admin_api_key else None
            if key is not None and (key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_PRODUCTION_KEY_LENGTH):
                raise ValueError(
                    f"admin_api_key is a placeholder or shorter than {MIN_PRODUCTION_KEY_LENGTH} characters")
        return self

    def migration_attributes(self) -> dict[str, Any]:
        """What this service's migrations may need besides the database (e.g. an encryption key)."""
        return {}

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}{self.service_name}"


def service_config(env_prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", env_file=None, hide_input_in_errors=True)
