"""What reaches a service `make up` starts: the stack's values, then leadflow.env, then the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leadflow_stack.console import CONSOLE
from leadflow_stack.errors import StackError
from leadflow_stack.services import SERVICE_NAMES, ServiceConfig
from leadflow_stack.stack import Stack, StackConfig
from leadflow_stack.user_settings import (
    merge_user_settings,
    read_env_file,
    secret_setting_names,
    setting_names,
    unknown_names,
)


def _stack(tmp_path: Path, file_text: str | None, environ: dict[str, str]) -> Stack:
    env_file = tmp_path / "leadflow.env"
    if file_text is not None:
        env_file.write_text(file_text)
    return Stack(tmp_path / "stack", StackConfig(), env_file=env_file, environ=environ)


def _service_env(stack: Stack, name: str) -> dict[str, str]:
    return stack.service_config(name).env(stack.root)


def test_the_environment_wins_over_the_file_and_both_over_the_stack(tmp_path: Path) -> None:
    stack = _stack(
        tmp_path,
        "# rate limits\n"
        "CAPTURE_RATE_LIMIT_FORM_PER_MINUTE=60\n"
        "CAPTURE_RATE_LIMIT_IP_BURST=5\n"
        "CAPTURE_WEBHOOK_ALLOW_HTTP=false\n"
        "SCORING_LOG_LEVEL=DEBUG\n",
        {"CAPTURE_RATE_LIMIT_IP_BURST": "7", "ROUTING_LOG_LEVEL": "WARNING", "PATH": "/usr/bin"},
    )
    capture = _service_env(stack, "capture")
    assert capture["CAPTURE_RATE_LIMIT_FORM_PER_MINUTE"] == "60"  # file over the service's default
    assert capture["CAPTURE_RATE_LIMIT_IP_BURST"] == "7"  # environment over the file
    assert capture["CAPTURE_WEBHOOK_ALLOW_HTTP"] == "false"  # file over the stack's own value
    assert capture["CAPTURE_ENVIRONMENT"] == "development"  # the stack's value where the user gave none
    assert "SCORING_LOG_LEVEL" not in capture
    assert _service_env(stack, "scoring")["SCORING_LOG_LEVEL"] == "DEBUG"
    routing = _service_env(stack, "routing")
    assert routing["ROUTING_LOG_LEVEL"] == "WARNING"
    assert routing["ROUTING_WEBHOOK_ALLOWED_NETWORKS"] == "127.0.0.0/8,::1/128"


def test_a_port_moves_the_service_and_the_stack_follows(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "SLA_PORT=9105\n", {})
    config = stack.service_config("sla")
    assert config.port == 9105 and config.url == "http://127.0.0.1:9105"
    assert config.env(stack.root)["SLA_PORT"] == "9105"
    assert stack.service_config("capture").port == 8001


def test_database_and_broker_given_by_the_user_win(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "ENRICHMENT_DATABASE_URL=postgresql+asyncpg://u:p@db.internal/enrichment\n",
                   {"ENRICHMENT_KAFKA_BOOTSTRAP_SERVERS": "kafka.internal:9092"})
    env = _service_env(stack, "enrichment")
    assert env["ENRICHMENT_DATABASE_URL"] == "postgresql+asyncpg://u:p@db.internal/enrichment"
    assert env["ENRICHMENT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka.internal:9092"
    assert _service_env(stack, "scoring")["SCORING_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"


def test_topic_prefix_and_admin_key_stay_the_stacks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stack = _stack(tmp_path, "CAPTURE_TOPIC_PREFIX=mine.\n", {"CAPTURE_ADMIN_API_KEY": "k" * 40})
    env = _service_env(stack, "capture")
    assert env["CAPTURE_TOPIC_PREFIX"] == ""
    assert env["CAPTURE_ADMIN_API_KEY"] == "dev-admin-key"
    assert "CAPTURE_TOPIC_PREFIX is set by the stack itself" in caplog.text


def test_without_a_file_or_environment_a_service_gets_only_the_stacks_values(tmp_path: Path) -> None:
    stack = _stack(tmp_path, None, {})
    assert stack.service_config("capture").env_overrides == {}
    # The test stacks pass no environment: a shell's CAPTURE_... never reaches an isolated test service.
    assert Stack(tmp_path / "s").service_config("capture").env_overrides == {}


def test_the_file_is_read_as_dotenv(tmp_path: Path) -> None:
    path = tmp_path / "leadflow.env"
    path.write_text(
        '# comment\n\nexport CAPTURE_LOG_LEVEL=DEBUG\nCAPTURE_TRUSTED_PROXIES=\'["10.0.0.0/8"]\'\n'
        'CAPTURE_PUBLIC_BASE_URL="https://forms.example.com"  # inline\nBARE_NAME\n'
    )
    assert read_env_file(path) == {
        "CAPTURE_LOG_LEVEL": "DEBUG",
        "CAPTURE_TRUSTED_PROXIES": '["10.0.0.0/8"]',
        "CAPTURE_PUBLIC_BASE_URL": "https://forms.example.com",
    }
    assert read_env_file(tmp_path / "absent.env") == {}


def test_merge_keeps_only_the_services_prefix() -> None:
    merged = merge_user_settings(
        "sla", file_values={"SLA_X": "1", "SLAB_Y": "2", "CAPTURE_X": "3"}, environ={"HOME": "/root"}
    )
    assert merged == {"SLA_X": "1"}


def test_a_port_that_is_no_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="CAPTURE_PORT='eighty'"):
        _stack(tmp_path, "CAPTURE_PORT=eighty\n", {}).service_config("capture")


def test_names_no_service_reads_are_found() -> None:
    assert "CAPTURE_RATE_LIMIT_FORM_PER_MINUTE" in setting_names("capture")
    assert "ROUTING_WEBHOOK_ENCRYPTION_KEYS" in setting_names("routing")
    given = ["CAPTURE_RATE_LIMIT_FORM_PER_MINUTE", "CAPTURE_RATE_LIMT_IP_BURST", "SCORING_LOG_LEVEL", "PATH"]
    assert unknown_names(given, ["capture", "scoring"]) == ["CAPTURE_RATE_LIMT_IP_BURST"]


def test_the_secret_settings_are_the_secret_typed_ones_and_the_database_url() -> None:
    assert secret_setting_names("scoring") == {
        "SCORING_DATABASE_URL", "SCORING_ADMIN_API_KEY", "SCORING_KAFKA_SASL_PASSWORD"}
    routing = secret_setting_names("routing")
    assert {"ROUTING_WEBHOOK_ENCRYPTION_KEYS", "ROUTING_DEMO_WEBHOOK_SECRET", "ROUTING_SMTP_PASSWORD"} <= routing
    assert not routing & {"ROUTING_PORT", "ROUTING_SMTP_USERNAME", "ROUTING_DEMO_WEBHOOK_URL"}


def test_the_user_settings_survive_the_saved_config() -> None:
    config = ServiceConfig("capture", 8001, "db", "kafka", env_overrides={"CAPTURE_LOG_LEVEL": "DEBUG"})
    assert ServiceConfig.from_json(config.to_json()) == config


def test_every_name_in_the_shipped_example_is_a_setting_its_service_reads() -> None:
    example = Path(__file__).resolve().parents[4] / "leadflow.env.example"
    names = re.findall(r"^# ([A-Z][A-Z0-9_]+)=", example.read_text(), re.MULTILINE)
    assert len(names) > 30
    assert unknown_names(names, [*SERVICE_NAMES, CONSOLE]) == []
    assert {name.split("_", 1)[0].lower() for name in names} == {*SERVICE_NAMES, CONSOLE}


def test_make_up_names_the_settings_no_service_reads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stack = _stack(tmp_path, "CAPTURE_RATE_LIMIT_IP_BURST=5\nSCORING_LOGLEVEL=DEBUG\n", {"SLA_SCHEDULER_INTERVAL": "2"})
    stack.warn_unknown_settings(list(SERVICE_NAMES))
    assert "SCORING_LOGLEVEL is not a setting of any LeadFlow service" in caplog.text
    assert "SLA_SCHEDULER_INTERVAL is not a setting" in caplog.text
    assert "CAPTURE_RATE_LIMIT_IP_BURST" not in caplog.text


def test_the_dev_stack_reads_the_file_given_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "other.env"
    env_file.write_text("SCORING_LOG_LEVEL=DEBUG\nSCORING_DRY_RUN_MAX_LEADS=10\n")
    monkeypatch.setenv("SCORING_DRY_RUN_MAX_LEADS", "20")
    stack = Stack.dev(tmp_path / "stack", env_file=env_file)
    assert stack.service_config("scoring").env_overrides == {
        "SCORING_LOG_LEVEL": "DEBUG", "SCORING_DRY_RUN_MAX_LEADS": "20"}


async def test_status_shows_where_up_would_start_a_service(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "CAPTURE_PORT=9001\n", {})
    urls = {service.name: service.url for service in (await stack.status()).services}
    assert urls["capture"] == "http://127.0.0.1:9001"
    assert urls["enrichment"] == "http://127.0.0.1:8002"
