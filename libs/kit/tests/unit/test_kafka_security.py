"""Kafka security settings: validated combinations, env names, and the aiokafka options they become."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from leadflow_kit.kafka import kafka_client_options
from leadflow_kit.settings import ServiceSettings, service_config
from leadflow_stack.testing import self_signed_certificate


class CaptureLikeSettings(ServiceSettings):
    model_config = service_config("CAPTURE_")


def test_plaintext_is_the_default_and_adds_nothing_but_the_brokers() -> None:
    options = kafka_client_options(ServiceSettings(kafka_bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_plaintext_passes_mechanism_and_credentials(mechanism: str) -> None:
    settings = ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism=mechanism,
                               kafka_sasl_username="leadflow", kafka_sasl_password="s3cret")
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("leadflow", "s3cret")
    assert "ssl_context" not in options
    assert "s3cret" not in repr(settings)


def test_sasl_ssl_from_the_services_env_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cafile, _ = self_signed_certificate(tmp_path)
    monkeypatch.setenv("CAPTURE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CAPTURE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CAPTURE_KAFKA_SASL_USERNAME", "capture")
    monkeypatch.setenv("CAPTURE_KAFKA_SASL_PASSWORD", "from-a-secret")
    monkeypatch.setenv("CAPTURE_KAFKA_SSL_CAFILE", str(cafile))
    options = kafka_client_options(CaptureLikeSettings())
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "from-a-secret"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "leadflow test"),),)]


def test_ssl_with_a_client_certificate_and_system_cas(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path)
    options = kafka_client_options(ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_certfile=certfile,
                                                   kafka_ssl_keyfile=keyfile))
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
          "kafka_sasl_username": "u"}, "needs kafka_sasl_password"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
         "needs kafka_sasl_mechanism"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "",
          "kafka_sasl_password": "p"}, "needs kafka_sasl_username"),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "PLAINTEXT uses no SASL"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_username": "u",
          "kafka_sasl_password": "p"}, "kafka_sasl_mechanism"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ],
)
def test_incomplete_or_contradictory_settings_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings(**settings)  # type: ignore[arg-type]


def test_empty_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE"):
        monkeypatch.setenv(f"CAPTURE_KAFKA_{name}", "")
    assert kafka_client_options(CaptureLikeSettings())["security_protocol"] == "PLAINTEXT"


def test_tls_files_must_exist_and_match_the_protocol(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path)
    with pytest.raises(ValidationError, match="kafka_ssl_cafile"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ValidationError, match="SASL_PLAINTEXT uses no TLS"):
        ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                        kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile=certfile)
    with pytest.raises(ValidationError, match="kafka_ssl_keyfile needs kafka_ssl_certfile"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_keyfile=keyfile)
