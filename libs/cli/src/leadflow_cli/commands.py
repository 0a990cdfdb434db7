"""One function per command: call the service's admin API, say how to show the answer.

Each ``add_*`` function declares a resource's sub-commands; ``main`` wires them into the parser.
Only routes the services serve are used; what an API lacks (deleting a team or a queue) is not offered.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from leadflow_cli import config
from leadflow_cli.client import SERVICES, Api, ApiError, ServiceUnreachable
from leadflow_cli.inputs import UsageError, body_from, comma_list, read_json, read_object, read_text
from leadflow_cli.inputs import segment as seg
from leadflow_cli.render import Output, block, table

Handler = Callable[[Api, argparse.Namespace], Output]


class Builder:
    """Adds resources and their actions; every action also takes the common options."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
                 ) -> None:
        self.sub = sub
        self.common = common

    def resource(self, name: str, help_text: str, *, parents: list[argparse.ArgumentParser] | None = None
                 ) -> Resource:
        parser = self.sub.add_parser(name, help=help_text, description=help_text)
        actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
        return Resource(actions, [self.common, *(parents or [])])

    def command(self, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = self.sub.add_parser(name, help=help_text, description=help_text, parents=[self.common])
        parser.set_defaults(handler=handler)
        return parser


class Resource:
    def __init__(self, actions: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
        self.actions = actions
        self.parents = parents

    def action(self, name: str, handler: Handler, help_text: str, *, aliases: tuple[str, ...] = ()
               ) -> argparse.ArgumentParser:
        parser = self.actions.add_parser(name, help=help_text, description=help_text, parents=self.parents,
                                         aliases=list(aliases))
        parser.set_defaults(handler=handler)
        return parser


def _file(parser: argparse.ArgumentParser, *, required: bool = False, what: str = "a JSON object") -> None:
    parser.add_argument("-f", "--file", required=required, metavar="FILE", help=f"{what} ('-' reads stdin)")


def _active_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--active", dest="active", action="store_true", default=None, help="mark active")
    group.add_argument("--inactive", dest="active", action="store_false", help="mark inactive")


def _require_body(body: dict[str, Any], what: str) -> dict[str, Any]:
    if not body:
        raise UsageError(f"nothing to send: give -f FILE or at least one field flag for {what}")
    return body


# -- forms (capture) --------------------------------------------------------------------------

FORM_COLUMNS = [("key", "key"), ("name", "name"), ("status", "status"), ("required", "required_fields"),
                ("origins", "allowed_origins"), ("consent", "consent_required"), ("updated", "updated_at")]


def add_forms(b: Builder) -> None:
    r = b.resource("forms", "Form definitions (capture): field mapping, required fields, origins, consent")
    p = r.action("list", forms_list, "List forms")
    p.add_argument("--status", choices=["active", "archived"], help="only active or archived forms")
    p = r.action("get", forms_get, "Show one form (archived ones too)")
    p.add_argument("key")
    p = r.action("create", forms_create, "Define a new form from a JSON file (fails if the key exists)")
    _file(p, required=True, what="the form as JSON (key, name, field_mapping, ...)")
    p = r.action("apply", forms_apply, "Create or update forms from a JSON file (one form or a list); "
                 "only fields that differ are changed")
    _file(p, required=True, what="a form or a list of forms as JSON")
    p = r.action("update", forms_update, "Change some fields of a form")
    p.add_argument("key")
    _file(p, required=True, what="the fields to change as JSON")
    p = r.action("archive", forms_archive, "Archive a form (the API's DELETE): its submissions get 410 Gone; "
                 "the definition is kept", aliases=("delete",))
    p.add_argument("key")
    p = r.action("restore", forms_restore, "Make an archived form active again")
    p.add_argument("key")


def forms_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("capture", "/v1/admin/forms", status=args.status), FORM_COLUMNS)


def forms_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("capture", f"/v1/admin/forms/{seg(args.key)}"))


def forms_create(api: Api, args: argparse.Namespace) -> Output:
    form = api.post("capture", "/v1/admin/forms", read_object(args.file))
    return Output(form, message=f"created form '{form['key']}'")


def forms_apply(api: Api, args: argparse.Namespace) -> Output:
    document = read_json(args.file)
    forms = document if isinstance(document, list) else [document]
    if not all(isinstance(f, dict) and isinstance(f.get("key"), str) for f in forms):
        raise UsageError(f"{args.file} must hold a form object with a 'key', or a list of them")
    changes = config.Changes(dry_run=False)
    for form in forms:
        config.apply_form(api, changes, form)
    return Output(changes.rows, config.CHANGE_COLUMNS)


def forms_update(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.patch("capture", f"/v1/admin/forms/{seg(args.key)}", read_object(args.file)))


def forms_archive(api: Api, args: argparse.Namespace) -> Output:
    api.delete("capture", f"/v1/admin/forms/{seg(args.key)}")
    return Output({"key": args.key, "status": "archived"}, message=None)


def forms_restore(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.patch("capture", f"/v1/admin/forms/{seg(args.key)}", {"status": "active"}))


# -- accounts (enrichment) --------------------------------------------------------------------

ACCOUNT_COLUMNS = [("id", "id"), ("name", "name"), ("domains", "domains"), ("industry", "industry"),
                   ("employees", "employee_count"), ("country", "country"), ("owner", "owner_rep_id"),
                   ("tier", "tier")]


def add_accounts(b: Builder) -> None:
    r = b.resource("accounts", "The account directory leads are matched against (enrichment)")
    p = r.action("list", accounts_list, "List accounts, optionally searching by name or domain")
    p.add_argument("--search", "-q", help="name or domain contains this")
    p.add_argument("--limit", type=int, default=100, help="at most this many (1-1000; default 100)")
    p.add_argument("--offset", type=int, default=0)
    p = r.action("get", accounts_get, "Show one account")
    p.add_argument("account_id")
    p = r.action("create", accounts_create, "Create or replace an account from a JSON file")
    _file(p, required=True, what="the account as JSON (id, name, domains, industry, ...)")
    p = r.action("update", accounts_update, "Change some fields of an account")
    p.add_argument("account_id")
    _file(p, required=True, what="the fields to change as JSON")
    p = r.action("delete", accounts_delete, "Remove an account")
    p.add_argument("account_id")
    p = r.action("import", accounts_import, "Import accounts from a CSV file (create or replace)")
    p.add_argument("csv_file", metavar="CSV", help="columns id,name,domains,industry,employee_count,... "
                   "('-' reads stdin)")
    p = r.action("match", accounts_match, "Which account a lead would match (nothing is stored)")
    p.add_argument("--email")
    p.add_argument("--website")
    p.add_argument("--company")


def accounts_list(api: Api, args: argparse.Namespace) -> Output:
    rows = api.get("enrichment", "/v1/admin/accounts", q=args.search, limit=args.limit, offset=args.offset)
    return Output(rows, ACCOUNT_COLUMNS)


def accounts_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("enrichment", f"/v1/admin/accounts/{seg(args.account_id)}"))


def accounts_create(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("enrichment", "/v1/admin/accounts", read_object(args.file)))


def accounts_update(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.patch("enrichment", f"/v1/admin/accounts/{seg(args.account_id)}", read_object(args.file)))


def accounts_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("enrichment", f"/v1/admin/accounts/{seg(args.account_id)}")
    return Output({"id": args.account_id, "deleted": True})


def accounts_import(api: Api, args: argparse.Namespace) -> Output:
    response = api.call("enrichment", "POST", "/v1/admin/accounts/import", content=read_text(args.csv_file).encode(),
                        content_type="text/csv")
    result = response.json()
    summary = {k: result.get(k) for k in ("created", "updated", "rejected")}
    errors = result.get("errors") or []
    text = block(summary) + ("\n\n" + table(errors, [("line", "line"), ("field", "field"), ("code", "code"),
                                                     ("message", "message")]) if errors else "")
    return Output(result, text=text)


def accounts_match(api: Api, args: argparse.Namespace) -> Output:
    if not (args.email or args.website or args.company):
        raise UsageError("give at least one of --email, --website, --company")
    return Output(api.get("enrichment", "/v1/admin/accounts/match", email=args.email, website=args.website,
                          company=args.company))


# -- scoring models ---------------------------------------------------------------------------

MODEL_COLUMNS = [("id", "id"), ("version", "version"), ("name", "name"), ("active", "active"),
                 ("created", "created_at"), ("by", "created_by"), ("first activated", "first_activated_at")]
ACTIVATION_COLUMNS = [("id", "id"), ("active model", "active_model"), ("previous model", "previous_model"),
                      ("action", "action"), ("by", "by"), ("at", "at")]


def add_scoring_models(b: Builder) -> None:
    r = b.resource("scoring-models", "Versioned scoring models (scoring): validate, save, dry-run, activate, "
                   "roll back")
    r.action("list", models_list, "Every saved version, newest first")
    p = r.action("get", models_get, "Show one version ('active' for the active one)")
    p.add_argument("model_id", nargs="?", default="active")
    p = r.action("source", models_source, "A version's text as it was posted (YAML/JSON, comments included)")
    p.add_argument("model_id", nargs="?", default="active")
    r.action("schema", models_schema, "The JSON Schema of a scoring model")
    p = r.action("validate", models_validate, "Check a model file without saving it")
    _file(p, required=True, what="the model as YAML or JSON")
    p = r.action("create", models_create, "Save a model file as a new version (a draft until activated)")
    _file(p, required=True, what="the model as YAML or JSON")
    p.add_argument("--activate", action="store_true", help="activate the new version right away")
    p = r.action("activate", models_activate, "Make a version the one every new score uses")
    p.add_argument("model_id")
    r.action("rollback", models_rollback, "Undo the latest activation")
    r.action("activations", models_activations, "The activation log, newest first")
    p = r.action("dry-run", models_dry_run, "Score leads with a draft file or a saved version and show what "
                 "would change against the active model (nothing is saved)")
    p.add_argument("model_id", nargs="?", help="a saved version; or give the draft with -f")
    _file(p, what="a draft model as YAML or JSON")
    leads = p.add_mutually_exclusive_group(required=True)
    leads.add_argument("--last-n", type=int, metavar="N", help="the N most recently scored real leads")
    leads.add_argument("--leads", metavar="FILE", help="a JSON list of leads as lead.enriched describes them")


def _model_content(path: str) -> tuple[bytes, str]:
    text = read_text(path)
    json_like = path.endswith(".json") or (path == "-" and text.lstrip().startswith("{"))
    return text.encode(), "application/json" if json_like else "application/yaml"


def models_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("scoring", "/v1/admin/scoring-models"), MODEL_COLUMNS)


def models_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("scoring", f"/v1/admin/scoring-models/{seg(args.model_id)}"))


def models_source(api: Api, args: argparse.Namespace) -> Output:
    model_id = args.model_id
    if model_id == "active":
        # Only the plain GET knows 'active'; the source route wants the version id.
        model_id = api.get("scoring", "/v1/admin/scoring-models/active")["id"]
    text = api.get("scoring", f"/v1/admin/scoring-models/{seg(model_id)}/source")
    return Output(text, text=str(text))


def models_schema(api: Api, args: argparse.Namespace) -> Output:
    schema = api.get("scoring", "/v1/admin/scoring-models/schema")
    return Output(schema, text=config.dumps(schema))


def models_validate(api: Api, args: argparse.Namespace) -> Output:
    content, content_type = _model_content(args.file)
    report = api.call("scoring", "POST", "/v1/admin/scoring-models/validate", content=content,
                      content_type=content_type).json()
    if report.get("valid"):
        counts = ", ".join(f"{n} {kind}" for kind, n in (report.get("rules") or {}).items())
        return Output(report, text=f"valid: {report.get('name')} ({counts})")
    problems = table(report.get("errors") or [], [("field", "field"), ("code", "code"), ("message", "message")])
    return Output(report, text=f"invalid:\n{problems}", exit_code=1)


def models_create(api: Api, args: argparse.Namespace) -> Output:
    content, content_type = _model_content(args.file)
    model = api.call("scoring", "POST", "/v1/admin/scoring-models", content=content,
                     content_type=content_type).json()
    message = f"saved {model['id']} (version {model['version']}, not active)"
    if args.activate:
        activation = api.post("scoring", f"/v1/admin/scoring-models/{seg(model['id'])}/activate")
        model["active"] = True
        message = f"saved and activated {activation['active_model']} (was {activation['previous_model'] or '-'})"
    summary = {k: model.get(k) for k in ("id", "version", "name", "active", "created_at", "created_by")}
    return Output(model, text=f"{block(summary)}\n{message}")


def models_activate(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("scoring", f"/v1/admin/scoring-models/{seg(args.model_id)}/activate"))


def models_rollback(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("scoring", "/v1/admin/scoring-models/rollback"))


def models_activations(api: Api, args: argparse.Namespace) -> Output:
    rows = api.get("scoring", "/v1/admin/scoring-models/activations")
    columns = [(k, k) for k in rows[0]] if rows else ACTIVATION_COLUMNS
    return Output(rows, columns)


def models_dry_run(api: Api, args: argparse.Namespace) -> Output:
    if (args.model_id is None) == (args.file is None):
        raise UsageError("give either a saved MODEL_ID or a draft with -f FILE")
    body: dict[str, Any] = {"last_n": args.last_n} if args.last_n else {"leads": read_json(args.leads)}
    if args.file:
        body["model"] = read_text(args.file)
        result = api.post("scoring", "/v1/admin/scoring-models/dry-run", body)
    else:
        result = api.post("scoring", f"/v1/admin/scoring-models/{seg(args.model_id)}/dry-run", body)
    head = {"current model": result.get("current_model"), "draft model": result.get("draft_model") or "(draft)",
            "as of": result.get("as_of"), **(result.get("summary") or {})}
    rows = table(result.get("leads") or [], [
        ("lead", "lead_id"), ("score now", "current.score"), ("draft", "draft.score"), ("change", "score_change"),
        ("tier now", "current.tier"), ("draft tier", "draft.tier"), ("mql now", "current.is_mql"),
        ("draft mql", "draft.is_mql"), ("changes", "changes")])
    return Output(result, text=f"{block(head)}\n\n{rows}")


# -- reps, teams, queues, territories (routing) ------------------------------------------------

REP_COLUMNS = [("id", "id"), ("name", "name"), ("team", "team_id"), ("territories", "territories"),
               ("weight", "weight"), ("active", "active"), ("open", "open_leads"), ("today", "assigned_today"),
               ("unavailable now", "unavailable_now")]
REP_FLAGS = {"id": "id", "name": "name", "email": "email", "team": "team_id", "territories": "territories",
             "weight": "weight", "daily_capacity": "daily_capacity", "max_open_leads": "max_open_leads",
             "timezone": "timezone", "active": "active"}
TEAM_COLUMNS = [("id", "id"), ("name", "name"), ("strategy", "strategy"), ("manager", "manager_rep_id"),
                ("reps", "rep_ids"), ("escalate after", "escalate_after_breaches"),
                ("fallback queue", "fallback_queue"), ("assignments", "assignments")]
TEAM_FLAGS = {"id": "id", "name": "name", "strategy": "strategy", "manager": "manager_rep_id",
              "escalate_after_breaches": "escalate_after_breaches", "fallback_queue": "fallback_queue"}


def add_routing_admin(b: Builder) -> None:
    r = b.resource("reps", "Sales reps (routing): team, territories, weight, capacity, hours")
    p = r.action("list", reps_list, "List reps")
    p.add_argument("--team", help="only this team's reps")
    p = r.action("get", reps_get, "Show one rep")
    p.add_argument("rep_id")
    for name, handler, text in (("create", reps_create, "Add a rep"), ("update", reps_update, "Change a rep")):
        p = r.action(name, handler, text + " (flags override the -f file's fields)")
        if name == "create":
            p.add_argument("--id", help="default: generated")
        else:
            p.add_argument("rep_id")
        _file(p, what="the rep's fields as JSON (working_hours, out_of_office, ...)")
        p.add_argument("--name")
        p.add_argument("--email")
        p.add_argument("--team", help="team id")
        p.add_argument("--territories", type=comma_list, help="comma-separated, e.g. US-CA,EMEA")
        p.add_argument("--weight", type=int)
        p.add_argument("--daily-capacity", type=int)
        p.add_argument("--max-open-leads", type=int)
        p.add_argument("--timezone", help="IANA name, e.g. America/New_York")
        _active_flags(p)
    p = r.action("deactivate", reps_deactivate, "Deactivate a rep (the API's DELETE; kept for the audit trail)",
                 aliases=("delete",))
    p.add_argument("rep_id")

    r = b.resource("teams", "Teams (routing): strategy, manager, escalation, fallback queue")
    r.action("list", teams_list, "List teams with their reps")
    p = r.action("get", teams_get, "Show one team")
    p.add_argument("team_id")
    for name, handler, text in (("create", teams_create, "Add a team"), ("update", teams_update, "Change a team")):
        p = r.action(name, handler, text + " (flags override the -f file's fields)")
        if name == "create":
            p.add_argument("--id", help="default: generated")
        else:
            p.add_argument("team_id")
        _file(p)
        p.add_argument("--name")
        p.add_argument("--strategy", choices=["round_robin", "weighted", "load_balanced"])
        p.add_argument("--manager", help="the manager's rep id")
        p.add_argument("--escalate-after-breaches", type=int)
        p.add_argument("--fallback-queue")
    p = r.action("delete", teams_delete, "Remove a team with no reps that the active rules do not name")
    p.add_argument("team_id")

    r = b.resource("queues", "Queues where unroutable leads wait (routing)")
    r.action("list", queues_list, "List queues and how many leads wait in each")
    p = r.action("create", queues_create, "Add a queue")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--description")
    p = r.action("leads", queues_leads, "Leads waiting in a queue, oldest first, with their age and SLA state")
    p.add_argument("queue_id")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--cursor", help="the next_cursor of the page before")
    p = r.action("update", queues_update, "Rename or describe a queue")
    p.add_argument("queue_id")
    p.add_argument("--name")
    p.add_argument("--description")
    p = r.action("delete", queues_delete, "Remove a queue no lead waits in and nothing falls back to")
    p.add_argument("queue_id")

    r = b.resource("territories", "Territories, as the reps' territory lists define them (routing)")
    r.action("list", territories_list, "Each territory and the reps that cover it (set with "
             "'reps update REP --territories ...')")


def reps_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("routing", "/v1/admin/reps", team_id=args.team), REP_COLUMNS)


def reps_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("routing", f"/v1/admin/reps/{seg(args.rep_id)}"))


def reps_create(api: Api, args: argparse.Namespace) -> Output:
    body = _require_body(body_from(args, REP_FLAGS), "a rep")
    return Output(api.post("routing", "/v1/admin/reps", body))


def reps_update(api: Api, args: argparse.Namespace) -> Output:
    body = _require_body(body_from(args, {k: v for k, v in REP_FLAGS.items() if k != "id"}), "a rep")
    return Output(api.patch("routing", f"/v1/admin/reps/{seg(args.rep_id)}", body))


def reps_deactivate(api: Api, args: argparse.Namespace) -> Output:
    api.delete("routing", f"/v1/admin/reps/{seg(args.rep_id)}")
    return Output({"id": args.rep_id, "active": False})


def teams_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("routing", "/v1/admin/teams"), TEAM_COLUMNS)


def teams_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("routing", f"/v1/admin/teams/{seg(args.team_id)}"))


def teams_create(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("routing", "/v1/admin/teams", _require_body(body_from(args, TEAM_FLAGS), "a team")))


def teams_update(api: Api, args: argparse.Namespace) -> Output:
    body = _require_body(body_from(args, {k: v for k, v in TEAM_FLAGS.items() if k != "id"}), "a team")
    return Output(api.patch("routing", f"/v1/admin/teams/{seg(args.team_id)}", body))


def teams_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("routing", f"/v1/admin/teams/{seg(args.team_id)}")
    return Output({"id": args.team_id, "deleted": True})


def queues_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("routing", "/v1/admin/queues"), [("id", "id"), ("name", "name"), ("waiting", "waiting"),
                                                           ("description", "description")])


def queues_create(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("routing", "/v1/admin/queues",
                           {"id": args.id, "name": args.name, "description": args.description}))


def queues_leads(api: Api, args: argparse.Namespace) -> Output:
    page = api.get("routing", f"/v1/queues/{seg(args.queue_id)}/leads", limit=args.limit, cursor=args.cursor)
    rows = [{**lead, "sla_state": lead["sla"]["state"], "due_at": lead["sla"]["due_at"]} for lead in page["leads"]]
    listing = table(rows, [("lead", "lead_id"), ("queued at", "queued_at"), ("age s", "age_seconds"),
                           ("tier", "tier"), ("company", "company"), ("sla", "sla_state"), ("due at", "due_at")])
    more = f"\n\nnext page: --cursor {page['next_cursor']}" if page.get("next_cursor") else ""
    return Output(page, text=f"{page['waiting']} waiting in {page['queue']}\n\n{listing}{more}")


def queues_update(api: Api, args: argparse.Namespace) -> Output:
    body = _require_body(body_from(args, {"name": "name", "description": "description"}), "a queue")
    return Output(api.patch("routing", f"/v1/admin/queues/{seg(args.queue_id)}", body))


def queues_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("routing", f"/v1/admin/queues/{seg(args.queue_id)}")
    return Output({"id": args.queue_id, "deleted": True})


def territories_list(api: Api, args: argparse.Namespace) -> Output:
    covering: dict[str, list[dict[str, Any]]] = {}
    for rep in api.get("routing", "/v1/admin/reps"):
        for territory in rep.get("territories") or []:
            covering.setdefault(territory, []).append(rep)
    rows = [{"territory": t, "reps": [r["id"] for r in reps], "active_reps": [r["id"] for r in reps if r["active"]]}
            for t, reps in sorted(covering.items())]
    return Output(rows, [("territory", "territory"), ("reps", "reps"), ("active reps", "active_reps")])


# -- routing rules ----------------------------------------------------------------------------

RULESET_COLUMNS = [("version", "version"), ("active", "active"), ("rules", "rule_count"),
                   ("fallback queue", "fallback_queue"), ("created", "created_at"), ("activated", "activated_at"),
                   ("comment", "comment")]


def add_routing_rules(b: Builder) -> None:
    r = b.resource("routing-rules", "Ordered, versioned routing rules (routing)")
    p = r.action("get", rules_get, "The active rules, or one version")
    p.add_argument("--version", type=int)
    r.action("versions", rules_versions, "Every version, newest first")
    p = r.action("create", rules_create, "Save rules as a new version (active unless --no-activate)")
    _file(p, required=True, what='{"rules": [...], "fallback_queue": ...} or just the list of rules, as JSON')
    p.add_argument("--comment")
    p.add_argument("--no-activate", dest="activate", action="store_false", default=True)
    p = r.action("activate", rules_activate, "Make a saved version the active one")
    p.add_argument("version", type=int)
    p = r.action("dry-run", rules_dry_run, "Where a lead would go and why (nothing is assigned)")
    lead = p.add_mutually_exclusive_group(required=True)
    lead.add_argument("--lead-id", help="a lead routing already knows")
    lead.add_argument("--lead", metavar="FILE", help="a lead.scored-shaped payload as JSON")
    p.add_argument("--version", type=int, help="try this version instead of the active one")
    p.add_argument("--at", help="decide as if at this ISO time")


def _ruleset_text(ruleset: dict[str, Any]) -> str:
    head = {k: ruleset.get(k) for k in ("version", "active", "fallback_queue", "comment", "created_at",
                                        "activated_at")}
    rules = [{**rule, "conditions": " & ".join(
        f"{c.get('field')} {c.get('op')} {c.get('value')}" for c in rule.get("conditions") or []) or "(always)",
              "target": f"rep {rule['rep_id']}" if rule.get("rep_id") else f"team {rule.get('team_id')}"}
             for rule in ruleset.get("rules") or []]
    return block(head) + "\n\n" + table(rules, [("id", "id"), ("name", "name"), ("match", "match"),
                                                 ("conditions", "conditions"), ("to", "target"),
                                                 ("enabled", "enabled")])


def rules_get(api: Api, args: argparse.Namespace) -> Output:
    path = "/v1/admin/routing-rules" if args.version is None else f"/v1/admin/routing-rules/versions/{args.version}"
    ruleset = api.get("routing", path)
    return Output(ruleset, text=_ruleset_text(ruleset))


def rules_versions(api: Api, args: argparse.Namespace) -> Output:
    rows = [{**v, "rule_count": len(v.get("rules") or [])} for v in api.get("routing", "/v1/admin/routing-rules/"
                                                                                       "versions")]
    return Output(rows, RULESET_COLUMNS)


def rules_create(api: Api, args: argparse.Namespace) -> Output:
    document = read_json(args.file)
    body: dict[str, Any] = {"rules": document} if isinstance(document, list) else dict(document)
    if not isinstance(body.get("rules"), list):
        raise UsageError(f"{args.file} must hold a list of rules or an object with 'rules'")
    body = {k: v for k, v in body.items() if k in ("rules", "fallback_queue", "comment")}
    if args.comment is not None:
        body["comment"] = args.comment
    body["activate"] = args.activate
    ruleset = api.post("routing", "/v1/admin/routing-rules", body)
    return Output(ruleset, text=_ruleset_text(ruleset))


def rules_activate(api: Api, args: argparse.Namespace) -> Output:
    ruleset = api.post("routing", f"/v1/admin/routing-rules/versions/{args.version}/activate")
    return Output(ruleset, text=_ruleset_text(ruleset))


def rules_dry_run(api: Api, args: argparse.Namespace) -> Output:
    body: dict[str, Any] = {"lead_id": args.lead_id} if args.lead_id else {"lead": read_object(args.lead)}
    if args.version is not None:
        body["version"] = args.version
    if args.at:
        body["at"] = args.at
    return Output(api.post("routing", "/v1/admin/routing-rules/dry-run", body))


# -- SLA policies and calendars ---------------------------------------------------------------

POLICY_COLUMNS = [("id", "id"), ("tier", "tier"), ("team", "team_id"), ("name", "name"),
                  ("target s", "target_seconds"), ("warn at", "warning_ratio"), ("breach limit", "breach_limit"),
                  ("hours tz", "business_hours.timezone"), ("owner hours", "use_owner_hours"), ("active", "active")]
POLICY_FLAGS = {"tier": "tier", "team": "team_id", "name": "name", "target_seconds": "target_seconds",
                "warning_ratio": "warning_ratio", "breach_limit": "breach_limit",
                "use_owner_hours": "use_owner_hours", "active": "active"}


def add_sla(b: Builder) -> None:
    r = b.resource("sla-policies", "Time-to-first-touch targets per tier, optionally per team (sla)")
    r.action("list", policies_list, "List policies")
    p = r.action("get", policies_get, "Show one policy")
    p.add_argument("policy_id")
    for name, handler, text in (("create", policies_create, "Add a policy"),
                                ("update", policies_update, "Change a policy (running clocks keep their deadline)")):
        p = r.action(name, handler, text + "; flags override the -f file's fields")
        if name == "create":
            p.add_argument("--tier", choices=["hot", "warm", "cold"])
            p.add_argument("--team", help="omit for the tier's default policy")
        else:
            p.add_argument("policy_id")
        _file(p, what="the policy as JSON (business_hours, ...)")
        p.add_argument("--name")
        p.add_argument("--target-seconds", type=int, help="time to first touch")
        p.add_argument("--warning-ratio", type=float)
        p.add_argument("--breach-limit", type=int)
        hours = p.add_mutually_exclusive_group()
        hours.add_argument("--use-owner-hours", dest="use_owner_hours", action="store_true", default=None)
        hours.add_argument("--no-owner-hours", dest="use_owner_hours", action="store_false")
        _active_flags(p)
    p = r.action("delete", policies_delete, "Remove a policy (the tier's built-in default applies again)")
    p.add_argument("policy_id")

    r = b.resource("sla-calendars", "A rep's own business hours for SLA clocks (sla)")
    p = r.action("get", calendars_get, "Show a rep's calendar")
    p.add_argument("rep_id")
    p = r.action("set", calendars_set, "Set a rep's calendar")
    p.add_argument("rep_id")
    _file(p, required=True, what='business hours as JSON: {"timezone": ..., "days": [0,1,2,3,4], "start": ...}')
    p = r.action("delete", calendars_delete, "Remove a rep's calendar")
    p.add_argument("rep_id")


def policies_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("sla", "/v1/admin/sla-policies"), POLICY_COLUMNS)


def policies_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("sla", f"/v1/admin/sla-policies/{seg(args.policy_id)}"))


def policies_create(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("sla", "/v1/admin/sla-policies", _require_body(body_from(args, POLICY_FLAGS), "a policy")))


def policies_update(api: Api, args: argparse.Namespace) -> Output:
    flags = {k: v for k, v in POLICY_FLAGS.items() if k not in ("tier", "team")}
    body = _require_body(body_from(args, flags), "a policy")
    return Output(api.patch("sla", f"/v1/admin/sla-policies/{seg(args.policy_id)}", body))


def policies_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("sla", f"/v1/admin/sla-policies/{seg(args.policy_id)}")
    return Output({"id": args.policy_id, "deleted": True})


# -- campaign spend and currency rates (sla) ---------------------------------------------------

SPEND_COLUMNS = [("id", "id"), ("campaign", "utm_campaign"), ("source", "source"), ("from", "period_from"),
                 ("to", "period_to"), ("amount", "amount"), ("currency", "currency")]
SPEND_FLAGS = {"campaign": "utm_campaign", "source": "source", "period_from": "period_from",
               "period_to": "period_to", "amount": "amount", "currency": "currency"}


def add_money(b: Builder) -> None:
    r = b.resource("spend", "Marketing spend per campaign, source and period, for cost per lead and return on "
                            "spend (sla)")
    p = r.action("list", spend_list, "Spends sharing a day with [--from, --to], optionally of one campaign")
    p.add_argument("--from", dest="first", metavar="DATE", help="first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="last", metavar="DATE", help="last day, included")
    p.add_argument("--campaign", help="its utm_campaign")
    p = r.action("add", spend_add, "Record one spend (flags override the -f file's fields)")
    _file(p, what="the spend as JSON")
    p.add_argument("--campaign", help="utm_campaign, as on the leads")
    p.add_argument("--source", help="utm_source, as on the leads (e.g. linkedin)")
    p.add_argument("--from", dest="period_from", metavar="DATE", help="first day of the spend")
    p.add_argument("--to", dest="period_to", metavar="DATE", help="last day of the spend, included")
    p.add_argument("--amount", help="decimal, e.g. 3100.50")
    p.add_argument("--currency", help="ISO 4217, e.g. EUR")
    p = r.action("import", spend_import, "Import spends from CSV (utm_campaign,source,period_from,period_to,"
                                         "amount,currency): every row, or none when any row is at fault")
    p.add_argument("csv_file", help="the CSV ('-' reads stdin)")
    p = r.action("delete", spend_delete, "Remove a spend recorded in error")
    p.add_argument("spend_id")

    r = b.resource("currency-rates", "What each currency is worth in the reporting currency, as tables in force "
                                     "from a day on (sla)")
    p = r.action("get", rates_get, "The table in force on a day (today by default) and every table")
    p.add_argument("--on", metavar="DATE", help="the day (YYYY-MM-DD)")
    p = r.action("set", rates_set, "Set a whole table: in force from --from until the next table's day, or, "
                                   "without --from, replacing every table")
    p.add_argument("rates", nargs="+", metavar="CUR=RATE", help="e.g. EUR=1.08 GBP=1.27 (a currency left out has "
                                                                  "no rate in this table)")
    p.add_argument("--from", dest="effective_from", metavar="DATE", help="the first day the table is in force")
    p = r.action("delete", rates_delete, "Remove the table in force from a day (the one before it applies again)")
    p.add_argument("effective_from", metavar="DATE")


def spend_list(api: Api, args: argparse.Namespace) -> Output:
    params = {"from": args.first, "to": args.last, "utm_campaign": args.campaign}
    return Output(api.get("sla", "/v1/admin/campaigns/spend", **params), SPEND_COLUMNS)


def spend_add(api: Api, args: argparse.Namespace) -> Output:
    body = _require_body(body_from(args, SPEND_FLAGS), "a spend")
    return Output(api.post("sla", "/v1/admin/campaigns/spend", body))


def spend_import(api: Api, args: argparse.Namespace) -> Output:
    response = api.call("sla", "POST", "/v1/admin/campaigns/spend/import", content=read_text(args.csv_file).encode(),
                        content_type="text/csv")
    return Output(response.json())


def spend_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("sla", f"/v1/admin/campaigns/spend/{seg(args.spend_id)}")
    return Output({"id": args.spend_id, "deleted": True})


def _rate_list(rates: dict[str, Any] | None) -> str:
    return " ".join(f"{code}={rate}" for code, rate in sorted((rates or {}).items())) or "(none)"


def _rates_text(answer: dict[str, Any]) -> str:
    """The table in force on the day asked, then every table."""
    head = block({"reporting currency": answer.get("reporting_currency"), "on": answer.get("on"),
                  "in force from": answer.get("effective_from") or "every day",
                  "rates": _rate_list(answer.get("rates"))})
    rows = [{"from": t.get("effective_from") or "(every day)", "rates": _rate_list(t.get("rates"))}
            for t in answer.get("tables", [])]
    return f"{head}\n\n" + table(rows, [("in force from", "from"), ("rates", "rates")])


def rates_get(api: Api, args: argparse.Namespace) -> Output:
    answer = api.get("sla", "/v1/admin/currency-rates", on=args.on)
    return Output(answer, text=_rates_text(answer))


def rates_set(api: Api, args: argparse.Namespace) -> Output:
    rates: dict[str, str] = {}
    for item in args.rates:
        code, sep, rate = item.partition("=")
        if not sep or not code or not rate:
            raise UsageError(f"{item!r}: give each rate as CUR=RATE, e.g. EUR=1.08")
        rates[code.strip().upper()] = rate.strip()
    body: dict[str, Any] = {"rates": rates}
    if args.effective_from:
        body["effective_from"] = args.effective_from
    answer = api.put("sla", "/v1/admin/currency-rates", body)
    return Output(answer, text=_rates_text(answer))


def rates_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("sla", f"/v1/admin/currency-rates/{seg(args.effective_from)}")
    return Output({"effective_from": args.effective_from, "deleted": True})


def calendars_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("sla", f"/v1/admin/sla-calendars/{seg(args.rep_id)}"))


def calendars_set(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.put("sla", f"/v1/admin/sla-calendars/{seg(args.rep_id)}", read_object(args.file)))


def calendars_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete("sla", f"/v1/admin/sla-calendars/{seg(args.rep_id)}")
    return Output({"rep_id": args.rep_id, "deleted": True})


# -- webhooks (routing and sla) ---------------------------------------------------------------

SUBSCRIPTION_COLUMNS = [("id", "id"), ("url", "url"), ("events", "event_types"), ("active", "active"),
                        ("disabled because", "disabled_reason"), ("description", "description")]
DELIVERY_COLUMNS = [("webhook id", "webhook_id"), ("subscription", "subscription_id"), ("event", "event_type"),
                    ("lead", "lead_id"), ("status", "status"), ("attempts", "attempts"), ("replays", "replays"),
                    ("last code", "last_status_code"), ("last error", "last_error"), ("created", "created_at")]
WEBHOOK_SERVICES = ("routing", "sla")


def add_webhooks(b: Builder) -> None:
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--service", choices=WEBHOOK_SERVICES, default="routing",
                       help="whose subscriptions: routing (lead.routed to the CRM; default) or sla")
    r = b.resource("webhooks", "Signed webhook subscriptions, the delivery log and replay (routing, sla)",
                   parents=[which])
    r.action("list", hooks_list, "List subscriptions")
    p = r.action("get", hooks_get, "Show one subscription")
    p.add_argument("subscription_id")
    p = r.action("create", hooks_create, "Subscribe a URL; the signing secret is printed only now")
    p.add_argument("--url", required=True)
    p.add_argument("--event-type", dest="event_types", action="append", required=True, metavar="TYPE",
                   help="e.g. lead.routed; repeat for more; '*' for all")
    p.add_argument("--description")
    _filter_flags(p)
    p = r.action("update", hooks_update, "Change a subscription; --active re-enables one disabled by a 410")
    p.add_argument("subscription_id")
    p.add_argument("--url")
    p.add_argument("--event-type", dest="event_types", action="append", metavar="TYPE")
    p.add_argument("--description")
    _active_flags(p)
    _filter_flags(p)
    p.add_argument("--no-filters", action="store_true", help="remove the subscription's filters")
    p = r.action("delete", hooks_delete, "Remove a subscription (its delivery log stays readable)")
    p.add_argument("subscription_id")
    p = r.action("rotate-secret", hooks_rotate, "New signing secret; the old one keeps signing during the overlap")
    p.add_argument("subscription_id")
    p.add_argument("--overlap-seconds", type=float, help="default: the service's setting")
    p = r.action("deliveries", hooks_deliveries, "The delivery log, newest first")
    p.add_argument("--subscription")
    p.add_argument("--lead")
    p.add_argument("--status", choices=["pending", "held", "delivered", "dead"])
    p.add_argument("--limit", type=int, default=100)
    p = r.action("delivery", hooks_delivery, "One delivery with its payload and every attempt")
    p.add_argument("webhook_id")
    p = r.action("replay", hooks_replay, "Send one delivery again (same webhook-id)")
    p.add_argument("webhook_id")
    p = r.action("replay-subscription", hooks_replay_all, "Replay a subscription's dead (or delivered) deliveries")
    p.add_argument("subscription_id")
    p.add_argument("--status", dest="statuses", action="append", choices=["dead", "delivered"],
                   help="which deliveries (repeatable; default dead)")
    p.add_argument("--since", help="only deliveries created at or after this ISO time")
    p.add_argument("--lead", help="only this lead's deliveries")


HOOKS = "/v1/admin/webhooks"


def hooks_list(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get(args.service, f"{HOOKS}/subscriptions"), SUBSCRIPTION_COLUMNS)


def hooks_get(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get(args.service, f"{HOOKS}/subscriptions/{seg(args.subscription_id)}"))


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    for flag, dest in (("--tier", "tiers"), ("--team", "teams"), ("--form", "forms")):
        parser.add_argument(flag, dest=dest, action="append", metavar=flag.upper().lstrip("-"),
                            help=f"only leads of this {flag.lstrip('-')} (repeatable); replaces the old filters")


def _filters(args: argparse.Namespace) -> dict[str, list[str]] | None:
    """The filters the flags name (None: none named)."""
    named = {name: getattr(args, name) for name in ("tiers", "teams", "forms") if getattr(args, name)}
    return named or None


def hooks_create(api: Api, args: argparse.Namespace) -> Output:
    body: dict[str, Any] = {"url": args.url, "event_types": args.event_types, "description": args.description}
    if _filters(args):
        body["filters"] = _filters(args)
    created = api.post(args.service, f"{HOOKS}/subscriptions", body)
    return Output(created, message="the secret is shown only now: store it where the receiver can read it")


def hooks_update(api: Api, args: argparse.Namespace) -> Output:
    body = {k: v for k, v in {"url": args.url, "event_types": args.event_types, "description": args.description,
                              "active": args.active,
                              "filters": {} if args.no_filters else _filters(args)}.items() if v is not None}
    return Output(api.patch(args.service, f"{HOOKS}/subscriptions/{seg(args.subscription_id)}",
                            _require_body(body, "a subscription")))


def hooks_delete(api: Api, args: argparse.Namespace) -> Output:
    api.delete(args.service, f"{HOOKS}/subscriptions/{seg(args.subscription_id)}")
    return Output({"id": args.subscription_id, "deleted": True})


def hooks_rotate(api: Api, args: argparse.Namespace) -> Output:
    body = {"overlap_seconds": args.overlap_seconds} if args.overlap_seconds is not None else None
    rotated = api.post(args.service, f"{HOOKS}/subscriptions/{seg(args.subscription_id)}/rotate-secret", body)
    return Output(rotated, message="the new secret is shown only now")


def hooks_deliveries(api: Api, args: argparse.Namespace) -> Output:
    rows = api.get(args.service, f"{HOOKS}/deliveries", subscription_id=args.subscription, lead_id=args.lead,
                   status=args.status, limit=args.limit)
    return Output(rows, DELIVERY_COLUMNS)


def hooks_delivery(api: Api, args: argparse.Namespace) -> Output:
    detail = api.get(args.service, f"{HOOKS}/deliveries/{seg(args.webhook_id)}")
    head = {k: v for k, v in detail.items() if k not in ("payload", "attempt_log")}
    attempts = table(detail.get("attempt_log") or [], [
        ("#", "attempt"), ("at", "attempted_at"), ("outcome", "outcome"), ("code", "status_code"),
        ("ms", "duration_ms"), ("error", "error"), ("next", "next_attempt_at")])
    return Output(detail, text=f"{block(head)}\n\nattempts:\n{attempts}")


def hooks_replay(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post(args.service, f"{HOOKS}/deliveries/{seg(args.webhook_id)}/replay"))


def hooks_replay_all(api: Api, args: argparse.Namespace) -> Output:
    body: dict[str, Any] = {"statuses": args.statuses or ["dead"]}
    if args.since:
        body["since"] = args.since
    if args.lead:
        body["lead_id"] = args.lead
    return Output(api.post(args.service, f"{HOOKS}/subscriptions/{seg(args.subscription_id)}/replay", body))


# -- API keys (every service) -----------------------------------------------------------------

KEY_COLUMNS = [("service", "service"), ("id", "id"), ("name", "name"), ("public id", "public_id"),
               ("scopes", "scopes"), ("created", "created_at"), ("revoked", "revoked_at"),
               ("last used", "last_used_at")]


def add_api_keys(b: Builder) -> None:
    r = b.resource("api-keys", "Scoped API keys; each service keeps its own")
    p = r.action("list", keys_list, "List keys (never the keys themselves)")
    p.add_argument("--service", choices=[*SERVICES, "all"], default="all", help="default: every service")
    p = r.action("create", keys_create, "Create a key on one service; the key is printed only now")
    p.add_argument("--service", choices=list(SERVICES), required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--scope", dest="scopes", action="append", required=True, metavar="SCOPE",
                   help="e.g. crm:events, forms:read, routing:* (repeatable)")
    p = r.action("revoke", keys_revoke, "Revoke a key on one service")
    p.add_argument("--service", choices=list(SERVICES), required=True)
    p.add_argument("key_id")


def keys_list(api: Api, args: argparse.Namespace) -> Output:
    services = list(SERVICES) if args.service == "all" else [args.service]
    rows = [{"service": s, **key} for s in services for key in api.get(s, "/v1/admin/api-keys")]
    return Output(rows, KEY_COLUMNS)


def keys_create(api: Api, args: argparse.Namespace) -> Output:
    created = api.post(args.service, "/v1/admin/api-keys", {"name": args.name, "scopes": args.scopes})
    return Output(created, message=f"the key is shown only now; it is valid on {args.service} only")


def keys_revoke(api: Api, args: argparse.Namespace) -> Output:
    api.delete(args.service, f"/v1/admin/api-keys/{seg(args.key_id)}")
    return Output({"service": args.service, "id": args.key_id, "revoked": True})


# -- leads (read-only views) and reports --------------------------------------------------------


def add_leads(b: Builder) -> None:
    r = b.resource("leads", "What happened to one lead; claim or reassign it (routing)")
    p = r.action("claim", leads_claim, "A rep takes a lead waiting in a queue")
    p.add_argument("lead_id")
    p.add_argument("--rep", required=True, help="the rep who takes it")
    p = r.action("reassign", leads_reassign, "Move any open lead to a rep or a queue, with a reason")
    p.add_argument("lead_id")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--rep")
    target.add_argument("--queue")
    p.add_argument("--reason", required=True)
    for name, handler, text in (
        ("timeline", leads_timeline, "The lead's whole journey across services, with its SLA clock (sla)"),
        ("assignment", leads_assignment, "Who owns the lead and every routing decision (routing)"),
        ("score", leads_score, "Score, grade, tier, stage and how each change came about (scoring)"),
        ("enrichment", leads_enrichment, "The lead as enrichment normalized and matched it (enrichment)"),
    ):
        p = r.action(name, handler, text)
        p.add_argument("lead_id")

    r = b.resource("reports", "Reports (sla)")
    p = r.action("funnel", reports_funnel, "Funnel KPIs for leads captured in [from, to)")
    p.add_argument("--from", dest="start", help="inclusive ISO time; default 30 days ago")
    p.add_argument("--to", dest="end", help="exclusive ISO time; default now")
    p.add_argument("--group-by", choices=["source", "utm_campaign", "form", "team", "rep"])
    p.add_argument("--csv", action="store_true", help="the report as CSV")


def leads_timeline(api: Api, args: argparse.Namespace) -> Output:
    timeline = api.get("sla", f"/v1/leads/{seg(args.lead_id)}/timeline")
    stages = table(timeline.get("stages") or [], [
        ("stage", "stage"), ("at", "at"), ("since capture ms", "since_capture_ms"),
        ("since previous ms", "since_previous_ms"), ("source", "source")])
    sla = timeline.get("sla") or {}
    text = f"lead {timeline.get('lead_id')}\n\n{stages}"
    if sla:
        text += f"\n\nsla:\n{block(sla)}"
    return Output(timeline, text=text)


def leads_assignment(api: Api, args: argparse.Namespace) -> Output:
    view = api.get("routing", f"/v1/leads/{seg(args.lead_id)}/assignment")
    head = {k: v for k, v in view.items() if k != "history"}
    history = table(view.get("history") or [], [
        ("at", "at"), ("outcome", "outcome"), ("rep", "rep_id"), ("team", "team_id"), ("queue", "queue"),
        ("rule", "rule_id"), ("version", "ruleset_version"), ("reason", "reason")])
    return Output(view, text=f"{block(head)}\n\nhistory:\n{history}")


def leads_claim(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.post("routing", f"/v1/leads/{seg(args.lead_id)}/claim", {"rep_id": args.rep}))


def leads_reassign(api: Api, args: argparse.Namespace) -> Output:
    target = {"rep_id": args.rep} if args.rep else {"queue": args.queue}
    return Output(api.post("routing", f"/v1/leads/{seg(args.lead_id)}/reassign", {**target, "reason": args.reason}))


def leads_score(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("scoring", f"/v1/leads/{seg(args.lead_id)}/score"))


def leads_enrichment(api: Api, args: argparse.Namespace) -> Output:
    return Output(api.get("enrichment", f"/v1/leads/{seg(args.lead_id)}"))


def reports_funnel(api: Api, args: argparse.Namespace) -> Output:
    params = {"from": args.start, "to": args.end, "group_by": args.group_by}
    if args.csv:
        response = api.call("sla", "GET", "/v1/reports/funnel", params={**params, "format": "csv"})
        return Output(response.text, text=response.text)
    return Output(api.get("sla", "/v1/reports/funnel", **params))


# -- whole configuration ----------------------------------------------------------------------


def add_config(b: Builder) -> None:
    b.command("export", export_config, "Print all admin configuration as JSON, for review in git "
              "(forms, scoring model, teams, reps, queues, routing rules, SLA policies and calendars, "
              "currency rate tables, webhook subscriptions; not accounts, spend, API keys or webhook secrets)")
    p = b.command("import", import_config, "Make the services match an exported configuration: create what is "
                  "missing, change what differs; nothing is deleted")
    p.add_argument("config_file", metavar="CONFIG", help="a file written by 'leadflow export' ('-' reads stdin)")
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    b.command("status", status, "Is each service up and ready (database and broker reachable)?")


def export_config(api: Api, args: argparse.Namespace) -> Output:
    exported = config.export_all(api)
    return Output(exported, text=config.dumps(exported))


def import_config(api: Api, args: argparse.Namespace) -> Output:
    document = read_object(args.config_file)
    changes = config.Changes(dry_run=args.dry_run)
    try:
        config.import_all(api, document, changes)
    except (ApiError, ServiceUnreachable) as exc:
        return Output(changes.rows, config.CHANGE_COLUMNS, message=f"stopped after: {changes.tally()}",
                      error=str(exc), exit_code=1)
    tally = changes.tally()
    message = ("dry run: nothing was changed; " if args.dry_run else "") + tally
    return Output(changes.rows, config.CHANGE_COLUMNS, message=message)


def status(api: Api, args: argparse.Namespace) -> Output:
    rows = []
    for service in SERVICES:
        url = api.url(service)
        try:
            api.get(service, "/readyz")
            state, detail = "ready", ""
        except ServiceUnreachable as exc:
            state, detail = "down", exc.cause
        except ApiError as exc:
            state, detail = "not ready", exc.reason
        rows.append({"service": service, "url": url, "state": state, "detail": detail})
    down = any(r["state"] != "ready" for r in rows)
    return Output(rows, [("service", "service"), ("url", "url"), ("state", "state"), ("detail", "detail")],
                  exit_code=1 if down else 0)


def add_all(b: Builder) -> None:
    add_forms(b)
    add_scoring_models(b)
    add_routing_admin(b)
    add_routing_rules(b)
    add_sla(b)
    add_money(b)
    add_webhooks(b)
    add_api_keys(b)
    add_accounts(b)
    add_leads(b)
    add_config(b)
