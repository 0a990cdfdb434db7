"""docker-compose.yml, which cannot run here (no Docker engine): valid against the Compose
Specification's schema and wired as `make up` runs the services (ports, settings, development mode).
deploy/check.sh runs the same check on the real file; these show it catches what it should."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadflow_stack.services import DEFAULT_SERVICE_PORTS, SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]


# deploy/check_assets.py is a script, not a package module.
_check_assets = runpy.run_path(str(ROOT / "deploy" / "check_assets.py"))
check_compose = _check_assets["check_compose"]
CheckFailed = _check_assets["CheckFailed"]


@pytest.fixture
def compose() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _problems(compose: dict[str, Any]) -> str:
    with pytest.raises(CheckFailed) as failed:
        check_compose(compose)
    return str(failed.value)


def test_the_shipped_compose_file_passes() -> None:
    assert "valid against the Compose Specification" in check_compose()


def test_every_service_make_up_starts_is_in_compose_on_its_port(compose: dict[str, Any]) -> None:
    for name in (*SERVICE_NAMES, "console"):
        port = DEFAULT_SERVICE_PORTS[name]
        service = compose["services"][name]
        assert f"{port}:{port}" in service["ports"]
        assert service["environment"][f"{name.upper()}_PORT"] == str(port)
        assert service["environment"][f"{name.upper()}_ENVIRONMENT"] == "development"


def test_a_file_the_schema_refuses_fails(compose: dict[str, Any]) -> None:
    compose["services"]["capture"]["restart_policy"] = "always"
    compose["services"]["sla"]["ports"] = [{"published": "8005", "bogus": True}]
    problems = _problems(compose)
    assert "services/capture: Unevaluated properties are not allowed ('restart_policy' was unexpected)" in problems
    assert "services/sla/ports/0" in problems


def test_a_variable_the_service_does_not_read_fails(compose: dict[str, Any]) -> None:
    env = compose["services"]["capture"]["environment"]
    env["CAPTURE_RATE_LIMIT_PER_MINUTE"] = "10"  # the setting is RATE_LIMIT_IP_PER_MINUTE
    env["ROUTING_LOG_LEVEL"] = "DEBUG"  # another service's prefix
    compose["services"]["migrate-capture"]["environment"] = env
    compose["services"]["console"]["environment"]["CONSOLE_SESSION_MAX_AGE"] = "60"  # ..._MAX_AGE_SECONDS
    problems = _problems(compose)
    assert "capture: CAPTURE_RATE_LIMIT_PER_MINUTE is not a setting of capture" in problems
    assert "console: CONSOLE_SESSION_MAX_AGE is not a setting of console" in problems
    assert "capture: ROUTING_LOG_LEVEL is not a setting of capture" in problems


def test_a_setting_make_up_gives_and_compose_lacks_fails(compose: dict[str, Any]) -> None:
    for name in ("routing", "migrate-routing"):
        compose["services"][name]["environment"] = {
            key: value for key, value in compose["services"][name]["environment"].items()
            if key != "ROUTING_WEBHOOK_ALLOW_HTTP"
        }
    compose["services"]["sla"]["environment"]["SLA_ENVIRONMENT"] = "production"
    compose["services"]["migrate-sla"]["environment"] = compose["services"]["sla"]["environment"]
    del compose["services"]["scoring"]
    problems = _problems(compose)
    assert "routing: ROUTING_WEBHOOK_ALLOW_HTTP is set by `make up` but not in compose" in problems
    assert "sla: SLA_ENVIRONMENT should be development, as in `make up`" in problems
    assert "scoring or migrate-scoring missing" in problems


def test_services_read_the_same_leadflow_env_as_make_up(compose: dict[str, Any]) -> None:
    for name in SERVICE_NAMES:
        for service in (name, f"migrate-{name}"):
            assert compose["services"][service]["env_file"] == [{"path": "./leadflow.env", "required": False}]


def test_a_value_the_service_refuses_fails(compose: dict[str, Any]) -> None:
    compose["services"]["sla"]["environment"]["SLA_WEBHOOK_ALLOWED_NETWORKS"] = "the lan"
    compose["services"]["migrate-sla"]["environment"] = compose["services"]["sla"]["environment"]
    problems = _problems(compose)
    assert "sla: its Settings refuse compose's environment" in problems
    assert "webhook_allowed_networks" in problems


def test_the_consoles_keys_are_provisioned_with_the_services_own_admin_keys(compose: dict[str, Any]) -> None:
    assert not [key for key in compose["services"]["console"]["environment"] if key.endswith("API_KEY")]
    provision = compose["services"]["provision-console-keys"]
    assert provision["command"] == ["provision-keys"]
    for name in SERVICE_NAMES:
        key = f"{name.upper()}_ADMIN_API_KEY"
        assert provision["environment"][key] == compose["services"][name]["environment"][key]


def test_an_admin_key_given_to_the_console_or_a_key_given_instead_of_provisioned_fails(
        compose: dict[str, Any]) -> None:
    env = compose["services"]["console"]["environment"]
    env["CAPTURE_ADMIN_API_KEY"] = "dev-admin-key"
    env["CONSOLE_SLA_API_KEY"] = "lf_given"
    compose["services"]["migrate-console"]["environment"] = env
    problems = _problems(compose)
    assert "console: CAPTURE_ADMIN_API_KEY must not reach the console" in problems
    assert "console: CONSOLE_SLA_API_KEY is given; compose provisions the console's keys instead" in problems


def test_a_console_wired_to_the_wrong_service_or_a_broken_key_bootstrap_fails(compose: dict[str, Any]) -> None:
    compose["services"]["console"]["environment"]["CONSOLE_ROUTING_URL"] = "http://routing:9999"
    compose["services"]["provision-console-keys"]["environment"]["SLA_ADMIN_API_KEY"] = "another-key"
    del compose["services"]["provision-console-keys"]["depends_on"]["scoring"]
    del compose["services"]["console"]["depends_on"]["provision-console-keys"]
    problems = _problems(compose)
    assert "console: CONSOLE_ROUTING_URL should be 'http://routing:8004'" in problems
    assert "provision-console-keys should have console's environment and each service's own" in problems
    assert "provision-console-keys should wait for scoring to be healthy" in problems
    assert "console should wait for provision-console-keys to complete" in problems


def test_a_service_without_the_cpu_share_make_up_gives_it_fails(compose: dict[str, Any]) -> None:
    assert compose["services"]["sla"]["cpu_shares"] == 110  # niceness 10 under `make up`
    del compose["services"]["sla"]["cpu_shares"]
    compose["services"]["routing"]["cpu_shares"] = 512
    problems = _problems(compose)
    assert "sla: cpu_shares should be 110" in problems
    assert "routing: cpu_shares should be 1024" in problems
