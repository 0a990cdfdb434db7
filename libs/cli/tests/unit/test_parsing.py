"""Arguments: where each option may go, defaults from the environment, usage errors."""

from __future__ import annotations

import pytest
from cli_fakes import FakeServices, run

from leadflow_cli.main import build_parser, connection


def test_common_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--routing-url", "http://r:1", "reps", "list"])
    after = parser.parse_args(["reps", "list", "--json", "--routing-url", "http://r:1"])
    for args in (before, after):
        assert args.json is True
        assert connection(args, {})[0]["routing"] == "http://r:1"


def test_urls_and_key_come_from_the_environment_when_no_flag_is_given() -> None:
    args = build_parser().parse_args(["forms", "list"])
    urls, key, timeout = connection(args, {"LEADFLOW_CAPTURE_URL": "http://capture.internal:9000",
                                           "LEADFLOW_API_KEY": "lf_secret"})
    assert urls["capture"] == "http://capture.internal:9000"
    assert urls["sla"] == "http://127.0.0.1:8005"
    assert (key, timeout) == ("lf_secret", 10.0)


def test_flags_win_over_the_environment() -> None:
    args = build_parser().parse_args(["forms", "list", "--api-key", "flag-key", "--capture-url", "http://flag:1"])
    urls, key, _ = connection(args, {"LEADFLOW_CAPTURE_URL": "http://env:1", "LEADFLOW_API_KEY": "env-key"})
    assert (urls["capture"], key) == ("http://flag:1", "flag-key")


def test_without_any_key_the_dev_key_is_sent(fake: FakeServices) -> None:
    fake.on("capture", "GET", "/v1/admin/forms", body=[])
    assert run(fake, "forms", "list").code == 0
    assert fake.requests[0].headers["authorization"] == "Bearer dev-admin-key"


def test_help_mentions_the_dev_key_and_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(None, "--help").code == 0
    help_text = capsys.readouterr().out
    assert "dev-admin-key" in help_text and "LEADFLOW_API_KEY" in help_text and "LEADFLOW_ROUTING_URL" in help_text


@pytest.mark.parametrize("argv", [
    ["nonsense"],
    ["forms"],
    ["forms", "get"],
    ["reps", "list", "--bogus"],
    ["webhooks", "list", "--service", "capture"],
    ["scoring-models", "dry-run", "m1"],
    ["api-keys", "create", "--name", "x", "--scope", "a"],
])
def test_usage_errors_exit_2_without_sending_anything(argv: list[str], fake: FakeServices,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run(fake, *argv).code == 2
    assert fake.requests == []
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_url_is_a_usage_error(fake: FakeServices) -> None:
    result = run(fake, "forms", "list", "--capture-url", "localhost:8001")
    assert result.code == 2
    assert "--capture-url must be an http(s) URL" in result.err


def test_a_missing_input_file_is_a_usage_error(fake: FakeServices) -> None:
    result = run(fake, "forms", "create", "-f", "/nonexistent/form.json")
    assert (result.code, fake.requests) == (2, [])
    assert "no such file: /nonexistent/form.json" in result.err


def test_an_input_file_that_is_not_json_is_a_usage_error(fake: FakeServices, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "form.json"
    path.write_text("{not json")
    result = run(fake, "forms", "create", "-f", str(path))
    assert result.code == 2
    assert "is not valid JSON" in result.err


def test_update_without_any_field_is_a_usage_error(fake: FakeServices) -> None:
    result = run(fake, "reps", "update", "rep-1")
    assert (result.code, fake.requests) == (2, [])
    assert "nothing to send" in result.err
