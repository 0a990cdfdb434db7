"""The broker's server.properties: make up's stays PLAINTEXT only; the test broker adds its SASL listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow_stack.errors import StackError
from leadflow_stack.kafka import SCRAM_MARKER, KafkaBroker
from leadflow_stack.stack import Stack, StackConfig


def _broker(tmp_path: Path, **ports: int) -> KafkaBroker:
    return KafkaBroker(tmp_path / "kafka", port=19092, controller_port=19093, log_path=tmp_path / "kafka.log",
                       marker_root=tmp_path, **ports)  # type: ignore[arg-type]


def test_the_dev_broker_has_only_its_plaintext_listener(tmp_path: Path) -> None:
    config = Stack(tmp_path, StackConfig()).kafka.config()
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert not [key for key in config if "sasl" in key or "ssl" in key]


def test_a_stack_json_written_before_the_sasl_listeners_still_opens(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"kafka_port": 29092, "kafka_controller_port": 29093}')
    stack = Stack.open(tmp_path)
    assert (stack.kafka.sasl_port, stack.kafka.sasl_ssl_port) == (None, None)


def test_the_test_broker_adds_sasl_plaintext_and_sasl_ssl_listeners(tmp_path: Path) -> None:
    broker = _broker(tmp_path, sasl_port=19094, sasl_ssl_port=19095)
    config = broker.config()
    assert config["listeners"] == ("PLAINTEXT://127.0.0.1:19092,SASL_PLAINTEXT://127.0.0.1:19094,"
                                   "SASL_SSL://127.0.0.1:19095,CONTROLLER://127.0.0.1:19093")
    assert config["inter.broker.listener.name"] == "PLAINTEXT"
    assert config["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    for listener in ("sasl_plaintext", "sasl_ssl"):
        assert "ScramLoginModule" in config[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
    assert Path(config["listener.name.sasl_ssl.ssl.keystore.location"]) == broker.tls.keystore
    assert broker.sasl_ssl_bootstrap_servers == "127.0.0.1:19095"


def test_a_data_dir_formatted_without_scram_credentials_is_refused_for_sasl(tmp_path: Path) -> None:
    broker = _broker(tmp_path, sasl_port=19094)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("version=1\n")
    with pytest.raises(StackError, match="formatted without SCRAM credentials"):
        broker.format("unused-classpath")
    (broker.base_dir / SCRAM_MARKER).write_text("SCRAM-SHA-256,SCRAM-SHA-512")
    broker.format("unused-classpath")
