"""API errors show the status, the field and the reason and exit 1; a service that is down is one
line naming its URL; never a traceback."""

from __future__ import annotations

import httpx
from cli_fakes import FakeServices, run


def test_a_validation_error_names_each_field_and_reason(fake: FakeServices, tmp_path: object) -> None:
    from pathlib import Path

    fake.on("capture", "POST", "/v1/admin/forms", 422, {
        "detail": "The request is invalid; see errors.",
        "errors": [{"field": "allowed_origins.0", "code": "value_error", "message": "not an origin"},
                   {"field": "name", "code": "missing", "message": "Field required"}]})
    path = Path(str(tmp_path)) / "form.json"
    path.write_text('{"key": "demo", "allowed_origins": ["nope"]}')
    result = run(fake, "forms", "create", "-f", str(path))
    assert result.code == 1
    assert result.out == ""
    assert result.err.splitlines() == [
        "leadflow: capture answered 422 Unprocessable Entity to POST http://127.0.0.1:8001/v1/admin/forms: "
        "The request is invalid; see errors.",
        "  allowed_origins.0: not an origin (value_error)",
        "  name: Field required (missing)",
    ]


def test_a_plain_detail_is_the_reason(fake: FakeServices) -> None:
    fake.on("routing", "GET", "/v1/admin/reps/nobody", 404, {"detail": "no rep 'nobody'"})
    result = run(fake, "reps", "get", "nobody")
    assert result.code == 1
    assert result.err.strip() == ("leadflow: routing answered 404 Not Found to GET "
                                  "http://127.0.0.1:8004/v1/admin/reps/nobody: no rep 'nobody'")


def test_auth_errors_are_api_errors(fake: FakeServices) -> None:
    fake.on("sla", "GET", "/v1/admin/sla-policies", 403, {"detail": "API key lacks the scope 'sla:read'"})
    result = run(fake, "sla-policies", "list")
    assert result.code == 1
    assert "403 Forbidden" in result.err and "lacks the scope 'sla:read'" in result.err


def test_a_body_that_is_not_json_is_shown_as_text(fake: FakeServices) -> None:
    fake.on("scoring", "GET", "/v1/admin/scoring-models", 502, text="Bad gateway from the proxy")
    result = run(fake, "scoring-models", "list")
    assert result.code == 1
    assert result.err.strip().endswith(": Bad gateway from the proxy")


def test_ids_are_escaped_into_one_path_segment(fake: FakeServices) -> None:
    run(fake, "forms", "get", "../api-keys")
    assert fake.requests[0].url.raw_path == b"/v1/admin/forms/..%2Fapi-keys"


def test_a_service_that_is_down_is_one_line_naming_its_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    fake = FakeServices()
    fake.handle = refuse  # type: ignore[method-assign]
    result = run(fake, "teams", "list", "--routing-url", "http://10.1.2.3:8004")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("leadflow: cannot reach routing at http://10.1.2.3:8004 ([Errno 111] Connection "
                               "refused); is it running?")
    assert "Traceback" not in result.err


def test_a_timeout_names_the_service_too() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake = FakeServices()
    fake.handle = hang  # type: ignore[method-assign]
    result = run(fake, "sla-policies", "list")
    assert result.code == 1
    assert "cannot reach sla at http://127.0.0.1:8005 (no answer within the timeout)" in result.err


def test_a_real_closed_port_is_reported_without_a_traceback() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(None, "forms", "list", "--capture-url", f"http://127.0.0.1:{port}")
    assert result.code == 1
    assert f"cannot reach capture at http://127.0.0.1:{port}" in result.err
    assert "Traceback" not in result.err


def test_status_marks_down_services_and_exits_1(fake: FakeServices) -> None:
    for service in ("capture", "enrichment", "scoring", "routing"):
        fake.on(service, "GET", "/readyz", body={"status": "ready"})
    fake.on("sla", "GET", "/readyz", 503, {"detail": "database unreachable"})
    result = run(fake, "status", "--json")
    assert result.code == 1
    assert [(r["service"], r["state"]) for r in result.json][-2:] == [("routing", "ready"), ("sla", "not ready")]
