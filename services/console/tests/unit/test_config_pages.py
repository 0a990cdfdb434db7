"""The configuration pages' own logic: what a dry run's destination reads as, a draft's YAML, and the SLA
form turned into sla's body and sla's errors back onto the form's fields."""

from __future__ import annotations

import yaml
from starlette.datastructures import FormData

from leadflow_console.clients import ServiceError
from leadflow_console.pages import routing_rules, sla_policies


def test_a_dry_run_destination_names_the_rep_the_queue_or_nurture():
    owner = {"rep_id": "rep-ada", "name": "Ada Lovelace"}
    assert routing_rules.destination({"owner": owner, "handoff": {}}) == "Ada Lovelace (rep-ada)"
    assert routing_rules.destination({"owner": None, "queue": "unassigned"}) == "queue unassigned"
    assert routing_rules.destination({"owner": owner, "handoff": {"held_in_nurture": True}}).startswith("nurture")


def test_a_draft_leaves_out_nulls_so_each_rule_names_one_target():
    text = routing_rules.draft_text({"version": 3, "rules": [
        {"id": "emea", "team_id": "emea", "rep_id": None, "conditions": [{"field": "region", "op": "eq",
                                                                          "value": "EMEA"}]}],
        "fallback_queue": None, "handoff": "mql", "comment": None})
    assert yaml.safe_load(text) == {"rules": [{"id": "emea", "team_id": "emea", "conditions": [
        {"field": "region", "op": "eq", "value": "EMEA"}]}], "handoff": "mql"}


def test_the_sla_form_becomes_sla_body_with_hours_only_when_asked():
    form = FormData([("tier", "warm"), ("team_id", "emea"), ("name", " Warm EMEA "), ("target_seconds", "1800"),
                     ("warning_ratio", ""), ("active", "on"), ("business_hours", "on"), ("timezone", "Europe/Paris"),
                     ("days", "0"), ("days", "2"), ("start", "08:30"), ("end", "18:00")])
    values = sla_policies.form_values(form)
    body = sla_policies.policy_body(values, creating=True)
    assert body == {"name": "Warm EMEA", "target_seconds": "1800", "tier": "warm", "team_id": "emea",
                    "use_owner_hours": False, "active": True,
                    "business_hours": {"timezone": "Europe/Paris", "start": "08:30", "end": "18:00",
                                       "days": ["0", "2"]}}
    without_hours = sla_policies.policy_body({**values, "business_hours": False}, creating=False)
    assert without_hours["business_hours"] is None and "tier" not in without_hours


def test_sla_errors_land_on_the_form_fields():
    refused = ServiceError("sla", 422, "The request is invalid", [
        {"field": "business_hours.timezone", "message": "unknown time zone 'Mars/Base'"},
        {"field": "business_hours.days.1", "message": "a weekday is 0-6"},
        {"field": "target_seconds", "message": "must be greater than 0"}])
    assert sla_policies.field_errors(refused) == {
        "business_hours.timezone": "unknown time zone 'Mars/Base'", "business_hours.days": "a weekday is 0-6",
        "target_seconds": "must be greater than 0"}
    # A calendar's body is the hours themselves.
    calendar = ServiceError("sla", 422, "invalid", [{"field": "timezone", "message": "unknown time zone"}])
    assert sla_policies.field_errors(calendar, prefix="business_hours.") == {
        "business_hours.timezone": "unknown time zone"}
    assert sla_policies.field_errors(ServiceError("sla", 409, "already has a warm policy")) == {
        "": "already has a warm policy"}


def test_a_roll_back_returns_to_the_version_activated_before_the_current_one():
    seeded = {"version": 1, "active": False, "activated_at": None}
    draft = {"version": 2, "active": False, "activated_at": None}
    current = {"version": 3, "active": True, "activated_at": "2026-12-03T10:00:00Z"}
    # Routing seeds version 1 active without an activation time: the latest older version is the way back.
    assert routing_rules._previous_version([current, draft, seeded]) == draft
    once = {"version": 2, "active": False, "activated_at": "2026-12-03T09:00:00Z"}
    assert routing_rules._previous_version([current, once, seeded]) == once
    assert routing_rules._previous_version([{**seeded, "active": True}]) is None
