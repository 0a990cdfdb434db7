"""How every Kafka client connects, and one producer per process, started lazily and rebuilt after
the broker goes away."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from leadflow_kit.settings import ServiceSettings

log = logging.getLogger(__name__)


def kafka_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """The connection arguments of every aiokafka client (producer, consumer, admin): the brokers and
    the security settings (TLS and SASL), as validated by ``ServiceSettings``."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers, "security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        # Hostname checking is always on; without a CA file the system's CAs verify the broker.
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
        )
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.kafka_sasl_password is not None  # the settings refuse SASL without one
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


class ProducerHolder:
    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **kafka_client_options(self._settings),
                    client_id=f"{self._settings.service_name}-producer",
                    acks="all",
                    enable_idempotence=True,
                    # Produce at once: batching would add its linger to every lead's journey.
                    linger_ms=0,
                    request_timeout_ms=self._settings.kafka_request_timeout_ms,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        """Drop the producer after a failure; the next ``get`` connects afresh."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except (TimeoutError, Exception):
                log.warning("kafka producer did not stop cleanly", exc_info=True)

    async def ping(self, timeout: float = 2.0) -> None:
        producer = await asyncio.wait_for(self.get(), timeout=timeout)
        ok = await asyncio.wait_for(producer.client.force_metadata_update(), timeout=timeout)
        if not ok:
            raise ConnectionError("kafka metadata update failed")

    async def close(self) -> None:
        await self.reset()
