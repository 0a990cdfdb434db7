"""What each command sends: route, body, service; and how import/apply decide what to change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from cli_fakes import FakeServices, run

FORM = {"key": "demo", "name": "Demo", "field_mapping": {}, "required_fields": ["email"], "allowed_origins": [],
        "success_url": None, "error_url": None, "consent_required": False, "consent_text": None,
        "consent_version": None, "honeypot_field": "_hp", "min_fill_seconds": 0.0, "status": "active",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "archived_at": None,
        "submission_url": "/v1/forms/demo/submissions", "embed_url": "/v1/forms/demo/embed.js"}


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_rep_flags_become_the_body(fake: FakeServices) -> None:
    fake.on("routing", "POST", "/v1/admin/reps", 201, {"id": "rep-ada"})
    result = run(fake, "reps", "create", "--id", "rep-ada", "--name", "Ada", "--territories", "US-CA, EMEA",
                 "--weight", "2", "--inactive")
    assert result.code == 0
    assert fake.sent() == [("routing", "POST", "/v1/admin/reps",
                            {"id": "rep-ada", "name": "Ada", "territories": ["US-CA", "EMEA"], "weight": 2,
                             "active": False})]


def test_flags_override_the_file(fake: FakeServices, tmp_path: Path) -> None:
    fake.on("sla", "PATCH", "/v1/admin/sla-policies/p1", body={"id": "p1"})
    path = write(tmp_path, "p.json", {"target_seconds": 60, "business_hours": {"timezone": "UTC"}})
    run(fake, "sla-policies", "update", "p1", "-f", path, "--target-seconds", "300")
    assert fake.sent()[0][3] == {"target_seconds": 300, "business_hours": {"timezone": "UTC"}}


def test_webhooks_go_to_routing_unless_told_sla(fake: FakeServices) -> None:
    fake.on("routing", "GET", "/v1/admin/webhooks/subscriptions", body=[])
    fake.on("sla", "GET", "/v1/admin/webhooks/subscriptions", body=[])
    run(fake, "webhooks", "list")
    run(fake, "webhooks", "list", "--service", "sla")
    assert [s[0] for s in fake.sent()] == ["routing", "sla"]


def test_webhook_create_prints_the_secret_once_with_a_warning(fake: FakeServices) -> None:
    fake.on("routing", "POST", "/v1/admin/webhooks/subscriptions", 201,
            {"id": "sub_1", "url": "https://crm.example.com/h", "event_types": ["lead.routed"], "secret": "whsec_x"})
    result = run(fake, "webhooks", "create", "--url", "https://crm.example.com/h", "--event-type", "lead.routed")
    assert fake.sent()[0][3] == {"url": "https://crm.example.com/h", "event_types": ["lead.routed"],
                                 "description": None}
    assert "whsec_x" in result.out and "shown only now" in result.out


def test_replay_subscription_defaults_to_dead_deliveries(fake: FakeServices) -> None:
    fake.on("sla", "POST", "/v1/admin/webhooks/subscriptions/sub_1/replay", 202, {"replayed": 2})
    run(fake, "webhooks", "replay-subscription", "sub_1", "--service", "sla", "--lead", "l1")
    assert fake.sent()[0][3] == {"statuses": ["dead"], "lead_id": "l1"}


def test_api_keys_are_listed_from_every_service(fake: FakeServices) -> None:
    for service in ("capture", "enrichment", "scoring", "routing", "sla"):
        fake.on(service, "GET", "/v1/admin/api-keys", body=[{"id": f"k-{service}", "name": "bootstrap"}])
    rows = run(fake, "api-keys", "list", "--json").json
    assert [(r["service"], r["id"]) for r in rows][:2] == [("capture", "k-capture"), ("enrichment", "k-enrichment")]
    assert len(rows) == 5


def test_a_yaml_model_is_posted_as_yaml_and_activated_on_request(fake: FakeServices, tmp_path: Path) -> None:
    fake.on("scoring", "POST", "/v1/admin/scoring-models", 201,
            {"id": "m-2", "version": 2, "name": "x", "active": False, "created_at": "t", "created_by": "admin"})
    fake.on("scoring", "POST", "/v1/admin/scoring-models/m-2/activate", body={
        "active_model": "m-2", "previous_model": "m-1", "activated_at": "t"})
    result = run(fake, "scoring-models", "create", "-f", write(tmp_path, "m.yaml", "name: x\n"), "--activate")
    assert result.code == 0
    post = fake.requests[0]
    assert (post.headers["content-type"], post.content) == ("application/yaml", b"name: x\n")
    assert "saved and activated m-2 (was m-1)" in result.out


def test_an_invalid_model_exits_1_listing_the_errors(fake: FakeServices, tmp_path: Path) -> None:
    fake.on("scoring", "POST", "/v1/admin/scoring-models/validate", body={
        "valid": False, "errors": [{"field": "fit_rules.0.points", "code": "type", "message": "not a number"}]})
    result = run(fake, "scoring-models", "validate", "-f", write(tmp_path, "m.yaml", "x"))
    assert result.code == 1
    assert "fit_rules.0.points  type  not a number" in result.out


def test_a_draft_dry_run_sends_the_model_text(fake: FakeServices, tmp_path: Path) -> None:
    fake.on("scoring", "POST", "/v1/admin/scoring-models/dry-run", body={
        "current_model": "m-1", "draft_model": None, "as_of": "t", "summary": {"leads": 0, "changed": 0},
        "leads": []})
    assert run(fake, "scoring-models", "dry-run", "-f", write(tmp_path, "m.yaml", "name: x\n"),
               "--last-n", "20").code == 0
    assert fake.sent()[0][3] == {"last_n": 20, "model": "name: x\n"}


def test_forms_apply_creates_missing_forms_and_patches_only_what_differs(fake: FakeServices, tmp_path: Path
                                                                         ) -> None:
    fake.on("capture", "GET", "/v1/admin/forms/demo", body=FORM)
    fake.on("capture", "PATCH", "/v1/admin/forms/demo", body=FORM)
    fake.on("capture", "POST", "/v1/admin/forms", 201, {"key": "new"})
    wanted = [{**FORM, "name": "Demo v2"}, {"key": "new", "name": "New"}]
    result = run(fake, "forms", "apply", "-f", write(tmp_path, "forms.json", wanted), "--json")
    assert result.code == 0
    writes = [s for s in fake.sent() if s[1] != "GET"]
    assert writes == [("capture", "PATCH", "/v1/admin/forms/demo", {"name": "Demo v2"}),
                      ("capture", "POST", "/v1/admin/forms", {"key": "new", "name": "New"})]
    assert [r["action"] for r in result.json] == ["updated", "created"]


def fake_configured_services(fake: FakeServices) -> None:
    fake.on("capture", "GET", "/v1/admin/forms", body=[FORM])
    fake.on("capture", "GET", "/v1/admin/forms/demo", body=FORM)
    fake.on("sla", "GET", "/v1/admin/currency-rates", body={
        "reporting_currency": "USD", "on": "2026-12-06", "effective_from": None, "rates": {"EUR": "1.08"},
        "tables": [{"effective_from": None, "rates": {"EUR": "1.08"}},
                   {"effective_from": "2027-01-01", "rates": {"EUR": "1.1"}}]})
    fake.on("scoring", "GET", "/v1/admin/scoring-models/active", body={"id": "m-1", "name": "b2b",
                                                                         "spec": {"name": "b2b"}})
    team = {"id": "emea", "name": "EMEA", "strategy": "round_robin", "manager_rep_id": "rep-ada",
            "escalate_after_breaches": None, "fallback_queue": None, "assignments": 7, "rep_ids": ["rep-ada"]}
    rep = {"id": "rep-ada", "name": "Ada", "email": None, "team_id": "emea", "territories": ["DE"], "weight": 1,
           "daily_capacity": None, "max_open_leads": None, "timezone": "UTC", "working_hours": None,
           "out_of_office": [], "active": True, "open_leads": 2}
    fake.on("routing", "GET", "/v1/admin/teams", body=[team])
    fake.on("routing", "GET", "/v1/admin/teams/emea", body=team)
    fake.on("routing", "GET", "/v1/admin/reps", body=[rep])
    fake.on("routing", "GET", "/v1/admin/reps/rep-ada", body=rep)
    fake.on("routing", "GET", "/v1/admin/queues", body=[
        {"id": "triage", "name": "Triage", "description": None, "waiting": 0, "created_at": "2026-01-01T00:00:00"},
        {"id": "implicit", "name": "implicit", "description": None, "waiting": 3, "created_at": "0001-01-01T00:00:00"},
    ])
    fake.on("routing", "GET", "/v1/admin/routing-rules", body={
        "version": 3, "rules": [{"id": "r1", "team_id": "emea"}], "fallback_queue": "triage", "handoff": "mql",
        "active": True})
    fake.on("sla", "GET", "/v1/admin/sla-policies", body=[{
        "id": "p-uuid", "tier": "hot", "team_id": None, "name": "hot default", "target_seconds": 300,
        "warning_ratio": 0.8, "breach_limit": 2, "business_hours": None, "use_owner_hours": False, "active": True}])
    fake.on("sla", "GET", "/v1/admin/sla-calendars/rep-ada", body={
        "rep_id": "rep-ada", "business_hours": {"timezone": "UTC"}, "updated_at": "t"})
    for service in ("routing", "sla"):
        fake.on(service, "GET", "/v1/admin/webhooks/subscriptions", body=[] if service == "sla" else [{
            "id": "sub_1", "url": "https://crm.example.com/h", "event_types": ["lead.routed"], "description": None,
            "active": True, "secret": "never-exported"}])


def test_export_keeps_configuration_and_drops_counters_and_generated_ids(fake: FakeServices) -> None:
    fake_configured_services(fake)
    exported = run(fake, "export").json
    assert exported["leadflow_config"] == 1
    assert exported["forms"][0] == {k: v for k, v in FORM.items() if k not in (
        "created_at", "updated_at", "archived_at", "submission_url", "embed_url")}
    assert exported["scoring_model"]["spec"] == {"name": "b2b"}
    assert "assignments" not in exported["teams"][0] and "open_leads" not in exported["reps"][0]
    assert [q["id"] for q in exported["queues"]] == ["triage"]
    assert exported["routing_rules"]["rules"] == [{"id": "r1", "team_id": "emea"}]
    assert exported["routing_rules"]["handoff"] == "mql"
    assert "id" not in exported["sla_policies"][0]
    assert exported["sla_calendars"] == [{"rep_id": "rep-ada", "business_hours": {"timezone": "UTC"}}]
    assert "secret" not in json.dumps(exported["webhook_subscriptions"])
    assert not [r for r in fake.requests if r.method != "GET"]


def test_importing_what_was_exported_changes_nothing(fake: FakeServices, tmp_path: Path) -> None:
    fake_configured_services(fake)
    exported = run(fake, "export").out
    result = run(fake, "import", write(tmp_path, "config.json", exported), "--json")
    assert result.code == 0, result.err
    assert {r["action"] for r in result.json} == {"unchanged"}
    assert not [r for r in fake.requests if r.method != "GET"]


def test_import_dry_run_reports_changes_and_writes_nothing(fake: FakeServices, tmp_path: Path) -> None:
    fake_configured_services(fake)
    config = json.loads(run(fake, "export").out)
    config["reps"][0]["weight"] = 5
    config["sla_policies"].append({"tier": "warm", "team_id": "emea", "target_seconds": 3600})
    config["routing_rules"]["fallback_queue"] = None
    path = write(tmp_path, "c.json", config)
    rows = run(fake, "import", path, "--dry-run", "--json").json
    assert not [r for r in fake.requests if r.method != "GET"]
    changed = {(r["resource"], r["id"], r["action"], r["detail"]) for r in rows if r["action"] != "unchanged"}
    assert changed == {("rep", "rep-ada", "would update", "weight"),
                       ("sla policy", "warm/emea", "would create", ""),
                       ("routing rules", "new version", "would create", "activated (was v3)")}
    human = run(fake, "import", path, "--dry-run")
    assert human.code == 0
    assert human.out.strip().endswith("dry run: nothing was changed; 9 unchanged, 1 would update, 2 would create")


def test_import_matches_sla_policies_by_tier_and_team_and_patches_by_their_id(fake: FakeServices,
                                                                              tmp_path: Path) -> None:
    fake_configured_services(fake)
    fake.on("sla", "PATCH", "/v1/admin/sla-policies/p-uuid", body={})
    config = json.loads(run(fake, "export").out)
    config["sla_policies"][0]["target_seconds"] = 120
    assert run(fake, "import", write(tmp_path, "c.json", config)).code == 0
    assert [s for s in fake.sent() if s[1] != "GET"] == [
        ("sla", "PATCH", "/v1/admin/sla-policies/p-uuid", {"target_seconds": 120})]


def test_import_sets_currency_rate_tables_and_never_deletes_a_dated_one(fake: FakeServices, tmp_path: Path) -> None:
    fake_configured_services(fake)
    fake.on("sla", "PUT", "/v1/admin/currency-rates", body={})
    config = json.loads(run(fake, "export").out)
    assert config["currency_rates"]["tables"][1] == {"effective_from": "2027-01-01", "rates": {"EUR": "1.1"}}
    # The same rates written otherwise are the same rates.
    config["currency_rates"]["tables"][1]["rates"]["EUR"] = "1.10"
    assert {r["action"] for r in run(fake, "import", write(tmp_path, "same.json", config), "--json").json} == {
        "unchanged"}
    # A new table for every day, the dated one left out of the file: it is put back after the PUT that
    # replaced every table, and a new dated table is set.
    config["currency_rates"]["tables"] = [{"effective_from": None, "rates": {"EUR": "1.07", "GBP": "1.25"}},
                                          {"effective_from": "2027-07-01", "rates": {"EUR": "1.05"}}]
    rows = run(fake, "import", write(tmp_path, "c.json", config), "--json").json
    assert [r for r in rows if r["resource"] == "currency rates"] == [
        {"resource": "currency rates", "id": "every day", "action": "updated", "detail": "EUR=1.07 GBP=1.25"},
        {"resource": "currency rates", "id": "2027-07-01", "action": "created", "detail": "EUR=1.05"}]
    assert [s[3] for s in fake.sent() if s[1] == "PUT"] == [
        {"rates": {"EUR": "1.07", "GBP": "1.25"}},
        {"rates": {"EUR": "1.05"}, "effective_from": "2027-07-01"},
        {"rates": {"EUR": "1.1"}, "effective_from": "2027-01-01"}]
    config["currency_rates"]["reporting_currency"] = "EUR"
    config["forms"][0]["name"] = "Renamed"
    writes = len([s for s in fake.sent() if s[1] != "GET"])
    refused = run(fake, "import", write(tmp_path, "eur.json", config))
    assert refused.code == 2 and "SLA_REPORTING_CURRENCY" in refused.err
    assert len([s for s in fake.sent() if s[1] != "GET"]) == writes, "refused before anything was written"


def test_import_renames_a_queue_in_place(fake: FakeServices, tmp_path: Path) -> None:
    fake_configured_services(fake)
    fake.on("routing", "PATCH", "/v1/admin/queues/triage", body={})
    config = json.loads(run(fake, "export").out)
    config["queues"][0]["description"] = "first look at odd leads"
    rows = run(fake, "import", write(tmp_path, "c.json", config), "--json").json
    assert {"resource": "queue", "id": "triage", "action": "updated", "detail": "description"} in rows
    assert [s for s in fake.sent() if s[1] != "GET"] == [
        ("routing", "PATCH", "/v1/admin/queues/triage", {"description": "first look at odd leads"})]


def test_an_import_that_fails_half_way_says_what_was_done_and_exits_1(fake: FakeServices, tmp_path: Path) -> None:
    fake_configured_services(fake)
    fake.on("capture", "PATCH", "/v1/admin/forms/demo", body=FORM)
    fake.answers[("routing", "PATCH", "/v1/admin/reps/rep-ada")] = httpx.Response(
        422, json={"detail": "The request is invalid; see errors.",
                   "errors": [{"field": "timezone", "code": "value_error", "message": "unknown time zone"}]})
    config = json.loads(run(fake, "export").out)
    config["forms"][0]["name"] = "Renamed"
    config["reps"][0]["timezone"] = "Mars/Olympus"
    result = run(fake, "import", write(tmp_path, "c.json", config))
    assert result.code == 1
    assert "form           demo" in result.out and "updated" in result.out
    assert "timezone: unknown time zone (value_error)" in result.err


def test_a_file_that_is_not_an_export_is_a_usage_error(fake: FakeServices, tmp_path: Path) -> None:
    result = run(fake, "import", write(tmp_path, "c.json", {"forms": []}))
    assert result.code == 2
    assert "not a leadflow export" in result.err


def test_source_of_the_active_model_looks_up_its_id_first(fake: FakeServices) -> None:
    fake.on("scoring", "GET", "/v1/admin/scoring-models/active", body={"id": "m-7"})
    fake.on("scoring", "GET", "/v1/admin/scoring-models/m-7/source", text="name: x\n")
    result = run(fake, "scoring-models", "source")
    assert (result.code, result.out) == (0, "name: x\n")


def test_a_queue_lists_its_leads_with_age_and_sla_and_a_lead_is_claimed_or_reassigned(fake: FakeServices) -> None:
    lead = {"lead_id": "lead-1", "queued_at": "2026-12-03T09:00:00Z", "age_seconds": 600.0, "tier": "hot",
            "company": "Acme", "sla": {"state": "warned", "due_at": "2026-12-03T09:05:00Z", "breach_count": 0}}
    fake.on("routing", "GET", "/v1/queues/triage/leads", body={"queue": "triage", "waiting": 7, "leads": [lead],
                                                              "next_cursor": "abc"})
    listed = run(fake, "queues", "leads", "triage", "--limit", "1")
    assert "7 waiting in triage" in listed.out and "warned" in listed.out and "--cursor abc" in listed.out
    assert dict(fake.requests[0].url.params) == {"limit": "1"}
    fake.on("routing", "POST", "/v1/leads/lead-1/claim", body={"lead_id": "lead-1", "outcome": "claimed"})
    fake.on("routing", "POST", "/v1/leads/lead-1/reassign", body={"lead_id": "lead-1", "outcome": "reassigned"})
    assert run(fake, "leads", "claim", "lead-1", "--rep", "rep-ada").code == 0
    assert run(fake, "leads", "reassign", "lead-1", "--queue", "triage", "--reason", "wrong territory").code == 0
    assert run(fake, "leads", "reassign", "lead-1", "--reason", "where to?").code == 2
    assert fake.sent("POST") == [
        ("routing", "POST", "/v1/leads/lead-1/claim", {"rep_id": "rep-ada"}),
        ("routing", "POST", "/v1/leads/lead-1/reassign", {"queue": "triage", "reason": "wrong territory"})]


def test_webhook_filters_are_sent_on_create_and_replaced_or_removed_on_update(fake: FakeServices) -> None:
    fake.on("routing", "POST", "/v1/admin/webhooks/subscriptions", 201,
            {"id": "sub_1", "url": "https://crm.example.com/h", "event_types": ["lead.mql"], "secret": "whsec_x"})
    fake.on("routing", "PATCH", "/v1/admin/webhooks/subscriptions/sub_1", 200, {"id": "sub_1"})
    run(fake, "webhooks", "create", "--url", "https://crm.example.com/h", "--event-type", "lead.mql",
        "--tier", "hot", "--tier", "warm", "--form", "demo")
    run(fake, "webhooks", "update", "sub_1", "--team", "emea")
    run(fake, "webhooks", "update", "sub_1", "--no-filters")
    bodies = [request[3] for request in fake.sent()]
    assert bodies[0]["filters"] == {"tiers": ["hot", "warm"], "forms": ["demo"]}
    assert bodies[1] == {"filters": {"teams": ["emea"]}}
    assert bodies[2] == {"filters": {}}


def test_rates_are_given_as_cur_eq_rate_and_shown_with_every_table(fake: FakeServices) -> None:
    answer = {"reporting_currency": "USD", "on": "2027-01-01", "effective_from": "2027-01-01",
              "rates": {"GBP": "1.3", "EUR": "1.2"},
              "tables": [{"effective_from": None, "rates": {"EUR": "1.1"}},
                         {"effective_from": "2027-01-01", "rates": {"EUR": "1.2", "GBP": "1.3"}}]}
    fake.on("sla", "PUT", "/v1/admin/currency-rates", 200, answer)
    result = run(fake, "currency-rates", "set", "eur=1.2", "GBP=1.3", "--from", "2027-01-01")
    assert result.code == 0, result.err
    assert fake.sent() == [("sla", "PUT", "/v1/admin/currency-rates",
                            {"rates": {"EUR": "1.2", "GBP": "1.3"}, "effective_from": "2027-01-01"})]
    lines = result.out.splitlines()
    assert lines[3].split() == ["rates", "EUR=1.2", "GBP=1.3"]
    assert [line.split() for line in lines[-2:]] == [["(every", "day)", "EUR=1.1"],
                                                     ["2027-01-01", "EUR=1.2", "GBP=1.3"]]
    refused = run(fake, "currency-rates", "set", "EUR:1.2")
    assert refused.code == 2 and "CUR=RATE" in refused.err and len(fake.requests) == 1
