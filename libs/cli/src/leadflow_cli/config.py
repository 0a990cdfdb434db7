"""All admin configuration as one JSON document (``leadflow export``), and making the services match
one (``leadflow import``) through the same admin APIs: create what is missing, change only the
fields that differ, never delete. Ids the services generate (SLA policies, webhook subscriptions)
are matched by what identifies them instead: tier and team, URL; currency rate tables by the day they
come into force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from leadflow_cli.client import Api, ApiError
from leadflow_cli.inputs import UsageError
from leadflow_cli.inputs import segment as seg

FORMAT_VERSION = 1

FORM_FIELDS = ("name", "field_mapping", "required_fields", "allowed_origins", "success_url", "error_url",
               "consent_required", "consent_text", "consent_version", "honeypot_field", "min_fill_seconds")
TEAM_FIELDS = ("name", "strategy", "manager_rep_id", "escalate_after_breaches", "fallback_queue")
REP_FIELDS = ("name", "email", "team_id", "territories", "weight", "daily_capacity", "max_open_leads", "timezone",
              "working_hours", "out_of_office", "active")
QUEUE_FIELDS = ("name", "description")
POLICY_FIELDS = ("name", "target_seconds", "warning_ratio", "breach_limit", "business_hours", "use_owner_hours",
                 "active")
SUBSCRIPTION_FIELDS = ("url", "event_types", "description", "active", "filters")
WEBHOOK_SERVICES = ("routing", "sla")

CHANGE_COLUMNS = [("resource", "resource"), ("id", "id"), ("action", "action"), ("detail", "detail")]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def _pick(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: row.get(k) for k in fields}


def _find(api: Api, service: str, path: str) -> Any:
    """The resource at ``path``, or None when the service answers 404."""
    try:
        return api.get(service, path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


# -- export -----------------------------------------------------------------------------------


def export_all(api: Api) -> dict[str, Any]:
    forms = sorted(api.get("capture", "/v1/admin/forms"), key=lambda f: f["key"])
    model = _find(api, "scoring", "/v1/admin/scoring-models/active")
    teams = api.get("routing", "/v1/admin/teams")
    reps = api.get("routing", "/v1/admin/reps")
    # Queues that rules name but nobody created are listed with a placeholder date; they are not config.
    queues = [q for q in api.get("routing", "/v1/admin/queues") if not str(q.get("created_at", "")).startswith("0001")]
    ruleset = _find(api, "routing", "/v1/admin/routing-rules")
    policies = api.get("sla", "/v1/admin/sla-policies")
    rates = api.get("sla", "/v1/admin/currency-rates")
    calendars = []
    for rep in reps:
        calendar = _find(api, "sla", f"/v1/admin/sla-calendars/{seg(rep['id'])}")
        if calendar is not None:
            calendars.append({"rep_id": rep["id"], "business_hours": calendar["business_hours"]})
    return {
        "leadflow_config": FORMAT_VERSION,
        "forms": [{"key": f["key"], **_pick(f, FORM_FIELDS), "status": f["status"]} for f in forms],
        "scoring_model": None if model is None else {"id": model["id"], "name": model["name"], "spec": model["spec"]},
        "teams": [{"id": t["id"], **_pick(t, TEAM_FIELDS)} for t in teams],
        "reps": [{"id": r["id"], **_pick(r, REP_FIELDS)} for r in reps],
        "queues": [{"id": q["id"], **_pick(q, QUEUE_FIELDS)} for q in queues],
        "routing_rules": None if ruleset is None else {"version": ruleset["version"], "rules": ruleset["rules"],
                                                       "fallback_queue": ruleset["fallback_queue"],
                                                       "handoff": ruleset.get("handoff")},
        "sla_policies": sorted(
            ({"tier": p["tier"], "team_id": p["team_id"], **_pick(p, POLICY_FIELDS)} for p in policies),
            key=lambda p: (p["tier"], p["team_id"] or "")),
        "sla_calendars": calendars,
        "currency_rates": {"reporting_currency": rates["reporting_currency"],
                           "tables": [{"effective_from": t["effective_from"], "rates": t["rates"]}
                                      for t in rates["tables"]]},
        "webhook_subscriptions": {
            service: sorted(({"id": s["id"], **_pick(s, SUBSCRIPTION_FIELDS)}
                             for s in api.get(service, "/v1/admin/webhooks/subscriptions")),
                            key=lambda s: (s["url"], s["id"]))
            for service in WEBHOOK_SERVICES
        },
    }


# -- import -----------------------------------------------------------------------------------


@dataclass
class Changes:
    """What an import (or ``forms apply``) did, or with ``dry_run`` would do, one row per resource."""

    dry_run: bool
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, resource: str, ident: str, action: str, detail: str = "") -> None:
        shown = {"create": "created", "update": "updated"}.get(action, action)
        if self.dry_run and action in ("create", "update"):
            shown = f"would {action}"
        self.rows.append({"resource": resource, "id": ident, "action": shown, "detail": detail})

    @property
    def writing(self) -> bool:
        return not self.dry_run

    def tally(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["action"]] = counts.get(row["action"], 0) + 1
        return ", ".join(f"{n} {action}" for action, n in counts.items()) or "nothing to do"


def differences(current: dict[str, Any], wanted: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``wanted`` sets to something other than ``current`` has."""
    return {k: wanted[k] for k in fields if k in wanted and wanted[k] != current.get(k)}


def apply_form(api: Api, changes: Changes, form: dict[str, Any]) -> None:
    key = form["key"]
    path = f"/v1/admin/forms/{seg(key)}"
    current = _find(api, "capture", path)
    if current is None:
        if changes.writing:
            api.post("capture", "/v1/admin/forms", {"key": key, **{k: form[k] for k in FORM_FIELDS if k in form}})
            if form.get("status") == "archived":
                api.patch("capture", path, {"status": "archived"})
        changes.record("form", key, "create")
        return
    changed = differences(current, form, (*FORM_FIELDS, "status"))
    if changed and changes.writing:
        api.patch("capture", path, changed)
    changes.record("form", key, "update" if changed else "unchanged", ", ".join(changed))


def _import_scoring_model(api: Api, changes: Changes, wanted: dict[str, Any]) -> None:
    spec = wanted.get("spec")
    if not isinstance(spec, dict):
        raise UsageError("scoring_model needs a 'spec' object")
    active = _find(api, "scoring", "/v1/admin/scoring-models/active")
    if active is not None and active["spec"] == spec:
        changes.record("scoring model", active["id"], "unchanged", "active")
        return
    ident = str(spec.get("name") or wanted.get("name") or "")
    if changes.writing:
        model = api.post("scoring", "/v1/admin/scoring-models", spec)
        api.post("scoring", f"/v1/admin/scoring-models/{seg(model['id'])}/activate")
        ident = model["id"]
    changes.record("scoring model", ident, "create",
                   f"new version, activated (was {active['id'] if active else 'none'})")


def _import_by_id(api: Api, changes: Changes, resource: str, base: str, wanted: dict[str, Any],
                  fields: tuple[str, ...], *, creatable: dict[str, Any] | None = None) -> None:
    ident = str(wanted["id"])
    current = _find(api, "routing", f"{base}/{seg(ident)}")
    if current is None:
        if changes.writing:
            body = creatable if creatable is not None else {k: wanted[k] for k in fields if k in wanted}
            api.post("routing", base, {"id": ident, **body})
        changes.record(resource, ident, "create")
        return
    changed = differences(current, wanted, fields)
    if changed and changes.writing:
        api.patch("routing", f"{base}/{seg(ident)}", changed)
    changes.record(resource, ident, "update" if changed else "unchanged", ", ".join(changed))


def _import_routing(api: Api, changes: Changes, document: dict[str, Any]) -> None:
    teams = document.get("teams") or []
    reps = document.get("reps") or []
    # A team's manager is a rep and a rep's team is a team: teams first without their manager,
    # then the reps, then the managers.
    for team in teams:
        without_manager = {k: team[k] for k in TEAM_FIELDS if k in team and k != "manager_rep_id"}
        _import_by_id(api, changes, "team", "/v1/admin/teams", team,
                      tuple(f for f in TEAM_FIELDS if f != "manager_rep_id"), creatable=without_manager)
    for rep in reps:
        _import_by_id(api, changes, "rep", "/v1/admin/reps", rep, REP_FIELDS)
    for team in teams:
        manager = team.get("manager_rep_id")
        if manager is None:
            continue
        current = _find(api, "routing", f"/v1/admin/teams/{seg(team['id'])}")
        if current is None or current.get("manager_rep_id") != manager:
            if changes.writing:
                api.patch("routing", f"/v1/admin/teams/{seg(team['id'])}", {"manager_rep_id": manager})
            changes.record("team", team["id"], "update", "manager_rep_id")

    existing = {q["id"]: q for q in api.get("routing", "/v1/admin/queues")}
    for queue in document.get("queues") or []:
        current = existing.get(queue["id"])
        if current is None or str(current.get("created_at", "")).startswith("0001"):
            if changes.writing:
                api.post("routing", "/v1/admin/queues", {"id": queue["id"], **_pick(queue, QUEUE_FIELDS)})
            changes.record("queue", queue["id"], "create")
        else:
            changed = differences(current, queue, QUEUE_FIELDS)
            if changed and changes.writing:
                api.patch("routing", f"/v1/admin/queues/{seg(queue['id'])}", changed)
            changes.record("queue", queue["id"], "update" if changed else "unchanged", ", ".join(changed))

    wanted = document.get("routing_rules")
    if wanted is not None:
        active = _find(api, "routing", "/v1/admin/routing-rules")
        # A document exported before hand-off policies has none: it keeps the active one's.
        handoff = wanted.get("handoff") or (active or {}).get("handoff")
        if active is not None and (active["rules"], active["fallback_queue"], active.get("handoff")) == (
                wanted.get("rules"), wanted.get("fallback_queue"), handoff):
            changes.record("routing rules", f"v{active['version']}", "unchanged", "active")
        else:
            ident = "new version"
            if changes.writing:
                created = api.post("routing", "/v1/admin/routing-rules", {
                    "rules": wanted.get("rules") or [], "fallback_queue": wanted.get("fallback_queue"),
                    **({"handoff": handoff} if handoff else {}), "comment": "leadflow import", "activate": True})
                ident = f"v{created['version']}"
            changes.record("routing rules", ident, "create",
                           f"activated (was {'v' + str(active['version']) if active else 'none'})")


def _import_sla(api: Api, changes: Changes, document: dict[str, Any]) -> None:
    existing = {(p["tier"], p["team_id"]): p for p in api.get("sla", "/v1/admin/sla-policies")}
    for policy in document.get("sla_policies") or []:
        key = (policy["tier"], policy.get("team_id"))
        ident = f"{key[0]}/{key[1] or 'default'}"
        current = existing.get(key)
        if current is None:
            if changes.writing:
                api.post("sla", "/v1/admin/sla-policies", {"tier": key[0], "team_id": key[1],
                                                            **{k: policy[k] for k in POLICY_FIELDS if k in policy}})
            changes.record("sla policy", ident, "create")
            continue
        changed = differences(current, policy, POLICY_FIELDS)
        if changed and changes.writing:
            api.patch("sla", f"/v1/admin/sla-policies/{seg(current['id'])}", changed)
        changes.record("sla policy", ident, "update" if changed else "unchanged", ", ".join(changed))
    for calendar in document.get("sla_calendars") or []:
        path = f"/v1/admin/sla-calendars/{seg(calendar['rep_id'])}"
        current = _find(api, "sla", path)
        if current is not None and current["business_hours"] == calendar["business_hours"]:
            changes.record("sla calendar", calendar["rep_id"], "unchanged")
            continue
        if changes.writing:
            api.put("sla", path, calendar["business_hours"])
        changes.record("sla calendar", calendar["rep_id"], "create" if current is None else "update")


def _rates(table: dict[str, Any]) -> dict[str, Decimal]:
    try:
        return {code: Decimal(str(rate)) for code, rate in table["rates"].items()}
    except InvalidOperation:
        raise UsageError(f"the currency rates from {table.get('effective_from') or 'every day'} are not "
                         "numbers") from None


def _current_currency_rates(api: Api, wanted: dict[str, Any] | None) -> dict[str, Any] | None:
    """sla's rate tables, when the file has some; checked before anything is written: rates worth another
    reporting currency than sla's would be wrong, not merely different."""
    if not wanted:
        return None
    current: dict[str, Any] = api.get("sla", "/v1/admin/currency-rates")
    if wanted.get("reporting_currency") not in (None, current["reporting_currency"]):
        raise UsageError(f"the file's currency rates are worth {wanted['reporting_currency']}, sla reports in "
                         f"{current['reporting_currency']} (SLA_REPORTING_CURRENCY)")
    return current


def _import_currency_rates(api: Api, changes: Changes, wanted: dict[str, Any] | None,
                           current: dict[str, Any] | None) -> None:
    """sla's rate tables as the file has them. A table for every day replaces every table in sla, so when it
    changes, the dated tables the file does not name are put back as they were: an import never deletes."""
    if not wanted or current is None:
        return
    have = {t["effective_from"]: _rates(t) for t in current["tables"]}
    want = {t.get("effective_from"): _rates(t) for t in wanted.get("tables") or []}

    def put(day: str | None, rates: dict[str, Decimal]) -> None:
        body: dict[str, Any] = {"rates": {code: str(rate) for code, rate in rates.items()}}
        if day is not None:
            body["effective_from"] = day
        api.put("sla", "/v1/admin/currency-rates", body)

    def record(day: str | None, action: str) -> None:
        changes.record("currency rates", day or "every day", action,
                       "" if action == "unchanged" else " ".join(f"{c}={r}" for c, r in sorted(want[day].items())))

    put_back: dict[str, dict[str, Decimal]] = {}
    if None in want:
        if want[None] == have.get(None):
            record(None, "unchanged")
        else:
            put_back = {day: rates for day, rates in have.items() if day is not None}
            if changes.writing:
                put(None, want[None])
            record(None, "update" if None in have else "create")
    for day in sorted(d for d in want if d is not None):
        same = have.get(day) == want[day]
        if changes.writing and (not same or day in put_back):
            put(day, want[day])
        put_back.pop(day, None)
        record(day, "unchanged" if same else "update" if day in have else "create")
    if changes.writing:
        for day, rates in sorted(put_back.items()):
            put(day, rates)


def _import_webhooks(api: Api, changes: Changes, document: dict[str, Any]) -> None:
    for service, wanted_list in (document.get("webhook_subscriptions") or {}).items():
        if service not in WEBHOOK_SERVICES:
            raise UsageError(f"webhook_subscriptions: unknown service {service!r} (routing or sla)")
        existing = api.get(service, "/v1/admin/webhooks/subscriptions")
        by_id = {s["id"]: s for s in existing}
        by_url = {s["url"]: s for s in existing}
        for wanted in wanted_list:
            current = by_id.get(wanted.get("id")) or by_url.get(wanted["url"])
            resource = f"{service} webhook"
            if current is None:
                detail = ""
                if changes.writing:
                    created = api.post(service, "/v1/admin/webhooks/subscriptions", {
                        k: wanted.get(k) for k in ("url", "event_types", "description", "filters")})
                    if wanted.get("active") is False:
                        api.patch(service, f"/v1/admin/webhooks/subscriptions/{seg(created['id'])}",
                                  {"active": False})
                    detail = f"{created['id']}; signing secret (shown only now): {created['secret']}"
                changes.record(resource, wanted["url"], "create", detail)
                continue
            changed = differences(current, wanted, SUBSCRIPTION_FIELDS)
            if changed and changes.writing:
                api.patch(service, f"/v1/admin/webhooks/subscriptions/{seg(current['id'])}", changed)
            changes.record(resource, wanted["url"], "update" if changed else "unchanged", ", ".join(changed))


def import_all(api: Api, document: dict[str, Any], changes: Changes) -> None:
    if document.get("leadflow_config") != FORMAT_VERSION:
        raise UsageError(f"not a leadflow export (expected \"leadflow_config\": {FORMAT_VERSION})")
    try:
        rates = _current_currency_rates(api, document.get("currency_rates"))
        for form in document.get("forms") or []:
            apply_form(api, changes, form)
        if document.get("scoring_model") is not None:
            _import_scoring_model(api, changes, document["scoring_model"])
        _import_routing(api, changes, document)
        _import_sla(api, changes, document)
        _import_currency_rates(api, changes, document.get("currency_rates"), rates)
        _import_webhooks(api, changes, document)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"the configuration is malformed near {exc}") from None
