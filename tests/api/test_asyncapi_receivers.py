"""The AsyncAPI document's receive operations are the topics each service's consumer subscribes to."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from leadflow_contracts.asyncapi import RECEIVERS, SERVICES
from leadflow_contracts.events import TOPIC_OF


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_receives_what_the_document_says(service: str) -> None:
    module: Any = importlib.import_module(f"leadflow_{service}.consumer")
    consumer = module.build_consumer()
    documented = {TOPIC_OF[event_type] for event_type, receivers in RECEIVERS.items() if service in receivers}
    assert consumer.topics == documented
    assert consumer.service == service
