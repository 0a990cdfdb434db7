"""Structural checks of LeadFlow's deploy assets that promtool and amtool cannot make.

Called by deploy/check.sh, one subcommand per check; exits non-zero with the reasons on stderr.
Needs PyYAML, jsonschema and the workspace's packages (run it with the workspace's Python): the
compose check reads the services' Settings and what `make up` starts from leadflow_stack.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import yaml

from leadflow_stack.console import CONSOLE, ConsoleSecrets
from leadflow_stack.services import DEFAULT_SERVICE_PORTS, SERVICE_NAMES, SERVICE_NICENESS, ServiceConfig
from leadflow_stack.user_settings import env_prefix, secret_setting_names, setting_names

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "leadflow.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
# The ops dashboard (Grafana's home) and the marketing and sales one; the provider loads the whole folder.
DASHBOARD_FILES = (DASHBOARDS / "leadflow.json", DASHBOARDS / "marketing-sales.json")
RUNBOOK = ROOT / "docs" / "runbook.md"
# What `make up` starts, on its ports: compose, Kubernetes and Prometheus must match it.
SERVICES = {name: DEFAULT_SERVICE_PORTS[name] for name in SERVICE_NAMES}
# Linux's CPU weight of a niceness (the kernel's sched_prio_to_weight): what a container's cpu_shares must be
# for a service to get, on a full machine, the share `make up` gives it by its niceness.
CPU_WEIGHT_OF_NICENESS = {0: 1024, 1: 820, 2: 655, 3: 526, 4: 423, 5: 335, 6: 272, 7: 215, 8: 172, 9: 137, 10: 110,
                          11: 87, 12: 70, 13: 56, 14: 45, 15: 36, 16: 29, 17: 23, 18: 18, 19: 15}
# The Compose Specification's JSON schema, vendored (deploy/compose/README.md says from where).
COMPOSE_SCHEMA = DEPLOY / "compose" / "compose-spec.json"
# Variables of a service container that are not the service's settings: the image's entrypoint reads it.
COMPOSE_ENTRYPOINT_VARIABLES = {"LEADFLOW_SERVICE"}
# The console, on its port; it calls the five and keeps its own database (no Kafka, no metrics).
CONSOLE_PORT = DEFAULT_SERVICE_PORTS[CONSOLE]
# Settings every service inherits (leadflow_kit.settings.ServiceSettings) that the console never reads:
# `make up` passes them to every process alike, a deployment need not.
CONSOLE_UNREAD = {"KAFKA_BOOTSTRAP_SERVERS", "TOPIC_PREFIX", "ADMIN_API_KEY"}
SEVERITIES = {"page", "ticket"}

# The metric names fixed in the team brief; rules and dashboards may use nothing else.
KNOWN_METRICS = {
    "up",
    "ALERTS",
    "leadflow_http_requests_total",
    "leadflow_http_request_duration_seconds",
    "leadflow_events_consumed_total",
    "leadflow_event_handle_duration_seconds",
    "leadflow_events_published_total",
    "leadflow_outbox_backlog",
    "leadflow_outbox_oldest_age_seconds",
    "leadflow_consumer_lag",
    "leadflow_dead_lettered_total",
    "leadflow_consumer_retries_total",
    "leadflow_submissions_total",
    "leadflow_enrichment_quality_score",
    "leadflow_enrichment_partial_total",
    # Enrichment's data-quality figures over its window, per form and source (issue 19).
    "leadflow_enrichment_data_quality_fills",
    "leadflow_enrichment_data_quality_ratio",
    "leadflow_enrichment_data_quality_completeness",
    # sla's funnel over its window, by source and by campaign, and speed to lead and SLA by team (issue 19).
    "leadflow_funnel_leads",
    "leadflow_funnel_campaign_leads",
    "leadflow_team_speed_to_lead_seconds",
    "leadflow_team_sla_leads",
    # ... and its money: pipeline and revenue by source, cost per lead by campaign (issue 19).
    "leadflow_funnel_source_money",
    "leadflow_funnel_campaign_cost_per_lead",
    "leadflow_leads_scored_total",
    "leadflow_mql_total",
    "leadflow_lead_score",
    "leadflow_scoring_model_version",
    "leadflow_routing_decisions_total",
    "leadflow_routing_fallback_total",
    # Scored leads parked while another transaction holds their team's or rep's row (issue 17).
    "leadflow_routing_parked_total",
    "leadflow_routing_unparked_total",
    "leadflow_routing_parked_leads",
    "leadflow_routing_parked_oldest_age_seconds",
    "leadflow_webhook_deliveries_total",
    "leadflow_webhook_delivery_duration_seconds",
    "leadflow_sla_open_clocks",
    "leadflow_sla_breaches_total",
    "leadflow_sla_warnings_total",
    "leadflow_speed_to_lead_seconds",
    "leadflow_pipeline_stage_seconds",
    "leadflow_leads_captured_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
RAW_METRIC = re.compile(r"\bleadflow_[a-z0-9_]+\b")
RECORDED = re.compile(r"\bleadflow:[a-z0-9_:]+")


class CheckFailed(Exception):
    pass


def load_yaml_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def load_yaml(path: Path) -> Any:
    docs = load_yaml_docs(path)
    if len(docs) != 1:
        raise CheckFailed(f"{path}: expected one YAML document, found {len(docs)}")
    return docs[0]


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors the way GitHub renders them (lower case, punctuation dropped, spaces to -)."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[`*_]", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text)))
    return anchors


def alert_rules() -> list[dict[str, Any]]:
    rules = load_yaml(RULES)
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def recording_names() -> set[str]:
    rules = load_yaml(RULES)
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if "expr" in annotation:
                yield f"{path.name}: annotation {annotation['name']}", annotation["expr"]


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values promtool can parse."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$__interval", "1m")
        .replace('"$service"', '".*"')
    )


# -- checks ---------------------------------------------------------------------------------


def _is_chart_template(path: Path) -> bool:
    return path.parent.name == "templates" and (path.parent.parent / "Chart.yaml").exists()


def check_yaml() -> str:
    # A Helm chart's templates are YAML only once rendered: tests/deploy/test_helm_chart.py renders them.
    found = [*sorted(DEPLOY.rglob("*.yml")), *sorted(DEPLOY.rglob("*.yaml"))]
    paths = [ROOT / "docker-compose.yml", *(path for path in found if not _is_chart_template(path))]
    problems = []
    for path in paths:
        try:
            load_yaml_docs(path)
        except yaml.YAMLError as exc:
            problems.append(f"{path.relative_to(ROOT)}: {exc}")
    if problems:
        raise CheckFailed("\n".join(problems))
    for dashboard in DASHBOARD_FILES:
        json.loads(dashboard.read_text(encoding="utf-8"))
    return f"{len(paths)} YAML files and the dashboards' JSON parse"


def check_alerts() -> str:
    """Every alert: severity, summary, description, a runbook anchor that exists, and unit tests
    that see it firing (with labels and annotations) and not firing."""
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8")) if RUNBOOK.exists() else set()
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for test_file in sorted(RULE_TESTS.glob("*.yml")):
        suite = load_yaml(test_file)
        rule_files = [(test_file.parent / f).resolve() for f in suite.get("rule_files", [])]
        if RULES.resolve() not in rule_files:
            raise CheckFailed(f"{test_file.name} does not load {RULES.name}")
        for test in suite["tests"]:
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                name = case["alertname"]
                if expected:
                    if all(a.get("exp_labels") and a.get("exp_annotations") for a in expected):
                        firing[name] = firing.get(name, 0) + 1
                else:
                    quiet[name] = quiet.get(name, 0) + 1
    problems = []
    alerts = alert_rules()
    names = [rule["alert"] for rule in alerts]
    if len(names) != len(set(names)):
        problems.append("duplicate alert names")
    for rule in alerts:
        name = rule["alert"]
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: annotation {key} missing")
        anchor = name.lower()
        if annotations.get("runbook_url") != f"docs/runbook.md#{anchor}":
            problems.append(f"{name}: runbook_url should be docs/runbook.md#{anchor}")
        if anchor not in anchors:
            problems.append(f"{name}: docs/runbook.md has no section with anchor #{anchor}")
        if not firing.get(name):
            problems.append(f"{name}: no unit test expects it firing (with exp_labels and exp_annotations)")
        if not quiet.get(name):
            problems.append(f"{name}: no unit test expects it not firing")
    unknown = (set(firing) | set(quiet)) - set(names)
    if unknown:
        problems.append(f"tests name alerts that do not exist: {sorted(unknown)}")
    if problems:
        raise CheckFailed("\n".join(problems))
    cases = sum(firing.values()) + sum(quiet.values())
    return f"{len(names)} alerts, each with a runbook section and firing + quiet tests ({cases} cases)"


def check_metrics() -> str:
    """Rules and dashboard use only the brief's metric names, each declared somewhere in the code,
    and only recorded series that a recording rule produces."""
    source_root = Path(os.environ.get("LEADFLOW_SOURCE_ROOT", ROOT))
    declared: set[str] = set()
    for base in ("libs", "services"):
        for path in (source_root / base).rglob("*.py"):
            if "tests" in path.parts:
                continue
            declared.update(re.findall(r"[\"'](leadflow_[a-z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    exprs = [
        ("rule " + (r.get("alert") or r.get("record")), r["expr"])
        for g in load_yaml(RULES)["groups"]
        for r in g["rules"]
    ]
    exprs += [("dashboard " + title, expr) for title, expr in dashboard_exprs()]
    recorded = recording_names()
    problems = []
    used = set()
    for where, expr in exprs:
        for name in RAW_METRIC.findall(expr):
            base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
            if base not in KNOWN_METRICS:
                problems.append(f"{where}: {name} is not a metric name from the team brief")
            elif base not in declared:
                problems.append(f"{where}: no code in libs/ or services/ declares {base}")
            used.add(base)
        for name in RECORDED.findall(expr):
            if name not in recorded:
                problems.append(f"{where}: {name} is not produced by any recording rule")
    if problems:
        raise CheckFailed("\n".join(sorted(set(problems))))
    return f"{len(exprs)} expressions use {len(used)} metrics, all declared in code"


def write_dashboard_rules(out: Path) -> str:
    """The dashboard's queries as recording rules, so `promtool check rules` parses their PromQL."""
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    return f"{len(rules)} dashboard queries written to {out}"


def check_grafana() -> str:
    found = sorted(DASHBOARDS.glob("*.json"))
    problems = [f"{path.name}: a dashboard the provider loads but no check reads (add it to DASHBOARD_FILES)"
                for path in found if path not in DASHBOARD_FILES]
    uids = [json.loads(path.read_text(encoding="utf-8")).get("uid") for path in DASHBOARD_FILES]
    if len(uids) != len(set(uids)):
        problems.append("two dashboards share a uid")
    panels = 0
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        panels += len(dashboard["panels"])
        problems += [f"{path.name}: {problem}" for problem in dashboard_problems(dashboard)]
    problems += provisioning_problems()
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(DASHBOARD_FILES)} dashboards, {panels} panels, provisioning consistent with compose"


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    problems = []
    if not dashboard.get("uid") or not dashboard.get("title"):
        problems.append("dashboard needs a uid and a title")
    ids = [p.get("id") for p in dashboard["panels"]]
    if None in ids or len(ids) != len(set(ids)):
        problems.append("panel ids must be present and unique")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    prometheus_uids = {d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus"}
    if variables.get("datasource", {}).get("current", {}).get("value") not in prometheus_uids:
        problems.append("the datasource variable should default to the provisioned Prometheus uid")
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel.get("gridPos", {})
        if not all(k in grid for k in ("x", "y", "w", "h")) or grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel.get('title')}: gridPos missing or wider than 24")
            continue
        xs, ys = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        cells = {(x, y) for x in xs for y in ys}
        if cells & occupied:
            problems.append(f"panel {panel['title']} overlaps another panel")
        occupied |= cells
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {panel['title']}: datasource should be ${{datasource}}")
        if not panel.get("targets") or not all(t.get("expr") for t in panel["targets"]):
            problems.append(f"panel {panel['title']}: no query")
    return problems


def provisioning_problems() -> list[str]:
    problems = []
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "leadflow.yml")
    compose = load_yaml(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    for provider in providers["providers"]:
        if not any(m.endswith(":" + provider["options"]["path"] + ":ro") for m in mounts):
            problems.append(f"grafana: provider path {provider['options']['path']} is not mounted in compose")
    return problems


def compose_schema_problems(compose: Any) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"docker-compose.yml at {'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    ]


def compose_settings_problems(name: str, env: dict[str, Any]) -> list[str]:
    """Every variable is a setting the service reads, and every one `make up` gives it is given here too,
    in development mode as there."""
    prefix = env_prefix(name)
    known = setting_names(name)
    problems = [
        f"{name}: {key} is not a setting of {name} (leadflow_{name}.settings.Settings)"
        for key in env
        if key not in COMPOSE_ENTRYPOINT_VARIABLES and (not key.startswith(prefix) or key.upper() not in known)
    ]
    make_up = ServiceConfig(name, DEFAULT_SERVICE_PORTS[name], "database", "kafka").env(ROOT)
    unread = {prefix + key for key in CONSOLE_UNREAD} if name == CONSOLE else set()
    for key in sorted(k for k in make_up if k.startswith(prefix) and k in known and k not in unread):
        if key not in env:
            problems.append(f"{name}: {key} is set by `make up` but not in compose")
    if env.get(prefix + "ENVIRONMENT") != make_up[prefix + "ENVIRONMENT"]:
        problems.append(f"{name}: {prefix}ENVIRONMENT should be {make_up[prefix + 'ENVIRONMENT']}, as in `make up`")
    refusal = settings_refusal(name, {key: str(value) for key, value in env.items()})
    if refusal:
        problems.append(f"{name}: its Settings refuse compose's environment: {refusal}")
    return problems


def settings_refusal(name: str, env: dict[str, str]) -> str | None:
    """Why ``leadflow_<name>.settings.Settings`` would not start with exactly ``env``, or None."""
    settings_class = importlib.import_module(f"leadflow_{name}.settings").Settings
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        settings_class()
    except pydantic.ValidationError as exc:
        return str(exc)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return None


def compose_serving_problems(name: str, svc: dict[str, Any], port: int, one_shots: tuple[str, ...]) -> list[str]:
    """A serving container: started after its one-shots completed, its port published, probed on /readyz."""
    problems = []
    deps = svc.get("depends_on", {})
    for dep in one_shots:
        if deps.get(dep, {}).get("condition") != "service_completed_successfully":
            problems.append(f"{name} should wait for {dep} to complete")
    if f"{port}:{port}" not in svc.get("ports", []):
        problems.append(f"{name}: port {port} not published")
    if "/readyz" not in json.dumps(svc.get("healthcheck", {})):
        problems.append(f"{name}: healthcheck should probe /readyz")
    return problems


def compose_console_problems(services: dict[str, Any]) -> list[str]:
    """The console as `make up` runs it, except its keys: provision-console-keys mints them with the
    services' own admin keys, and the console's container sees none of those."""
    console, migrate = services.get(CONSOLE), services.get(f"migrate-{CONSOLE}")
    provision = services.get(f"provision-{CONSOLE}-keys")
    if console is None or migrate is None or provision is None:
        return [f"{CONSOLE}, migrate-{CONSOLE} or provision-{CONSOLE}-keys missing"]
    env = console.get("environment", {})
    problems = []
    expectations = {
        "LEADFLOW_SERVICE": CONSOLE,
        "CONSOLE_PORT": str(CONSOLE_PORT),
        "CONSOLE_HOST": "0.0.0.0",
        "CONSOLE_DATABASE_URL": f"postgresql+asyncpg://leadflow:leadflow@postgres:5432/leadflow_{CONSOLE}",
        **{f"CONSOLE_{name.upper()}_URL": f"http://{name}:{port}" for name, port in SERVICES.items()},
    }
    for key, value in expectations.items():
        if str(env.get(key)) != value:
            problems.append(f"{CONSOLE}: {key} should be {value!r}, is {env.get(key)!r}")
    problems.extend(compose_settings_problems(CONSOLE, env))
    # What `make up` adds for the console besides the stack's wiring, but its keys: given, not provisioned.
    make_up = ConsoleSecrets("secret", "password", Path("password-file"), dict.fromkeys(SERVICES, "key")).env(
        {name: "url" for name in SERVICES})
    for key in sorted(make_up):
        if key.endswith("_API_KEY"):
            if key in env:
                problems.append(f"{CONSOLE}: {key} is given; compose provisions the console's keys instead")
        elif key not in env:
            problems.append(f"{CONSOLE}: {key} is set by `make up` but not in compose")
    for key in sorted(env):
        if key.endswith("ADMIN_API_KEY"):
            problems.append(f"{CONSOLE}: {key} must not reach the console (only provision-{CONSOLE}-keys)")
    for name, svc in ((f"migrate-{CONSOLE}", migrate), (f"provision-{CONSOLE}-keys", provision)):
        if svc.get("env_file") != console.get("env_file"):
            problems.append(f"{name} should share {CONSOLE}'s env_file")
    if migrate.get("environment") != env:
        problems.append(f"migrate-{CONSOLE} should share {CONSOLE}'s environment")
    migrate_runs = " ".join(migrate.get("entrypoint", []) + migrate.get("command", []))
    if "migrate" not in migrate_runs or "seed-demo" not in migrate_runs:
        problems.append(f"migrate-{CONSOLE} should run migrate and seed-demo (the first admin)")
    password_file = env.get("CONSOLE_FIRST_ADMIN_PASSWORD_FILE")
    if password_file not in [c.get("target") for c in migrate.get("configs", []) if isinstance(c, dict)]:
        problems.append(f"migrate-{CONSOLE}: CONSOLE_FIRST_ADMIN_PASSWORD_FILE ({password_file}) is not mounted")
    admin_keys = {f"{name.upper()}_ADMIN_API_KEY": services.get(name, {}).get("environment", {}).get(
        f"{name.upper()}_ADMIN_API_KEY") for name in SERVICES}
    if provision.get("environment") != {**env, **admin_keys}:
        problems.append(f"provision-{CONSOLE}-keys should have {CONSOLE}'s environment and each service's own "
                        "<SERVICE>_ADMIN_API_KEY, nothing else")
    if provision.get("command") != ["provision-keys"]:
        problems.append(f"provision-{CONSOLE}-keys should run provision-keys")
    provision_deps = provision.get("depends_on", {})
    for name in SERVICES:
        if provision_deps.get(name, {}).get("condition") != "service_healthy":
            problems.append(f"provision-{CONSOLE}-keys should wait for {name} to be healthy")
    if provision_deps.get(f"migrate-{CONSOLE}", {}).get("condition") != "service_completed_successfully":
        problems.append(f"provision-{CONSOLE}-keys should wait for migrate-{CONSOLE} to complete")
    problems.extend(compose_serving_problems(CONSOLE, console, CONSOLE_PORT,
                                             (f"migrate-{CONSOLE}", f"provision-{CONSOLE}-keys")))
    init = (DEPLOY / "postgres" / "init-databases.sh").read_text(encoding="utf-8")
    loop = re.search(r"^for service in ([a-z ]+); do", init, re.MULTILINE)
    if not loop or set(loop.group(1).split()) != {*SERVICES, CONSOLE}:
        problems.append(f"init-databases.sh should create the database of each of {', '.join([*SERVICES, CONSOLE])}")
    return problems


def check_compose(compose: Any = None) -> str:
    """docker-compose.yml, or the ``compose`` document given instead."""
    if compose is None:
        compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    problems = compose_schema_problems(compose)
    for required in ("kafka", "kafka-topics", "postgres", "prometheus", "alertmanager", "grafana"):
        if required not in services:
            problems.append(f"service {required} missing")
    for name, port in SERVICES.items():
        prefix = name.upper() + "_"
        svc, migrate = services.get(name), services.get(f"migrate-{name}")
        if svc is None or migrate is None:
            problems.append(f"{name} or migrate-{name} missing")
            continue
        env = svc.get("environment", {})
        expectations = {
            "LEADFLOW_SERVICE": name,
            prefix + "PORT": str(port),
            prefix + "HOST": "0.0.0.0",
            prefix + "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            prefix + "DATABASE_URL": f"postgresql+asyncpg://leadflow:leadflow@postgres:5432/leadflow_{name}",
        }
        for key, value in expectations.items():
            if str(env.get(key)) != value:
                problems.append(f"{name}: {key} should be {value!r}, is {env.get(key)!r}")
        if migrate.get("environment") != env or migrate.get("env_file") != svc.get("env_file"):
            problems.append(f"migrate-{name} should share {name}'s environment and env_file")
        if not any(
            isinstance(entry, dict) and entry.get("path") == "./leadflow.env" and entry.get("required") is False
            for entry in svc.get("env_file", [])
        ):
            problems.append(f"{name}: should read ./leadflow.env (optional) as `make up` does")
        problems.extend(compose_settings_problems(name, env))
        niceness = SERVICE_NICENESS.get(name, 0)
        shares = CPU_WEIGHT_OF_NICENESS[niceness]
        if svc.get("cpu_shares", 1024) != shares:
            problems.append(f"{name}: cpu_shares should be {shares}, its CPU share on a full machine as `make up` "
                            f"gives it at niceness {niceness}, is {svc.get('cpu_shares', 'unset (1024)')}")
        if "migrate" not in " ".join(migrate.get("entrypoint", []) + migrate.get("command", [])):
            problems.append(f"migrate-{name} does not run migrate")
        problems.extend(compose_serving_problems(name, svc, port, (f"migrate-{name}", "kafka-topics")))
    problems.extend(compose_console_problems(services))
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    for name, port in SERVICES.items():
        targets = [t for sc in jobs.get(f"leadflow-{name}", {}).get("static_configs", []) for t in sc["targets"]]
        if targets != [f"{name}:{port}"]:
            problems.append(f"prometheus.yml: job leadflow-{name} should scrape {name}:{port}")
    for svc_name, svc in services.items():
        for volume in svc.get("volumes", []):
            host = volume.split(":", 1)[0]
            if host.startswith("./") and not (ROOT / host).exists():
                problems.append(f"{svc_name}: mounted path {host} does not exist")
        build = svc.get("build")
        if build and not (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).exists():
            problems.append(f"{svc_name}: Dockerfile missing")
    if problems:
        raise CheckFailed("\n".join(problems))
    return (
        f"{len(services)} compose services valid against the Compose Specification and wired as `make up` "
        "(ports, settings, migrate and topics first; the console's keys provisioned, no admin key in it)"
    )


def check_k8s() -> str:
    k8s = DEPLOY / "k8s"
    kustomization = load_yaml(k8s / "kustomization.yaml")
    problems = []
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = k8s / resource
        if not path.exists():
            problems.append(f"kustomization resource {resource} missing")
            continue
        docs.extend(load_yaml_docs(path))
    for generator in kustomization.get("secretGenerator", []):
        for env_file in generator.get("envs", []):
            if not (k8s / (env_file + ".example")).exists():
                problems.append(f"{env_file}.example missing for secretGenerator {generator['name']}")
    for doc in docs:
        if not doc.get("apiVersion") or not doc.get("kind") or not doc.get("metadata", {}).get("name"):
            problems.append(f"manifest without apiVersion/kind/metadata.name: {str(doc)[:80]}")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    settings = by_kind.get("ConfigMap", {}).get("leadflow-settings", {}).get("data", {})
    secret_keys = set()
    example = k8s / "secrets.env.example"
    if example.exists():
        secret_keys = {
            line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")
        }
    for name, port in SERVICES.items():
        prefix = name.upper() + "_"
        for key in ("ENVIRONMENT", "HOST", "PORT", "KAFKA_BOOTSTRAP_SERVERS"):
            if prefix + key not in settings:
                problems.append(f"ConfigMap leadflow-settings lacks {prefix}{key}")
        secret_names = ["DATABASE_URL", "ADMIN_API_KEY"]
        if name in ("routing", "sla"):  # they store webhook signing secrets, encrypted with this key
            secret_names.append("WEBHOOK_ENCRYPTION_KEYS")
        for key in secret_names:
            if prefix + key not in secret_keys:
                problems.append(f"secrets.env.example lacks {prefix}{key}")
        deployment = by_kind.get("Deployment", {}).get(name)
        if deployment is None:
            problems.append(f"Deployment {name} missing")
            continue
        problems.extend(k8s_workload_problems(name, port, deployment, by_kind))
        problems.extend(k8s_secret_problems(name, name, deployment, secret_keys))
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(port):
            problems.append(f"{name}: prometheus scrape annotations missing or wrong port")
        job = by_kind.get("Job", {}).get(f"migrate-{name}")
        if job is None:
            problems.append(f"migration Job migrate-{name} missing")
        else:
            job_container = job["spec"]["template"]["spec"]["containers"][0]
            job_env = {e["name"]: e.get("value") for e in job_container.get("env", [])}
            if job_container.get("args") != ["migrate"] or job_env.get("LEADFLOW_SERVICE") != name:
                problems.append(f"migrate-{name} should run `migrate` for {name}")
            problems.extend(k8s_secret_problems(f"migrate-{name}", name, job, secret_keys))
    problems.extend(k8s_console_problems(by_kind, settings, secret_keys))
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(docs)} Kubernetes manifests consistent (the five services and the console)"


def k8s_workload_problems(name: str, port: int, deployment: dict[str, Any],
                          by_kind: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """A serving Deployment: 2+ replicas, probes, resources, its port, LEADFLOW_SERVICE, its Service."""
    problems = []
    spec = deployment["spec"]
    pod = spec["template"]
    container = pod["spec"]["containers"][0]
    if spec.get("replicas", 1) < 2:
        problems.append(f"{name}: needs at least 2 replicas")
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problems.append(f"{name}: readiness probe should GET /readyz")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problems.append(f"{name}: liveness probe should GET /healthz")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits"):
        problems.append(f"{name}: resources need requests and limits")
    if [p["containerPort"] for p in container.get("ports", [])] != [port]:
        problems.append(f"{name}: container should listen on {port}")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("LEADFLOW_SERVICE") != name:
        problems.append(f"{name}: LEADFLOW_SERVICE should be {name}")
    selector = spec["selector"]["matchLabels"]
    service = by_kind.get("Service", {}).get(name)
    if service is None or service["spec"]["selector"] != selector:
        problems.append(f"{name}: Service missing or selecting other pods")
    if not all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items()):
        problems.append(f"{name}: pod labels do not match the selector")
    return problems


def k8s_secret_problems(name: str, service: str, workload: dict[str, Any], secret_keys: set[str]) -> list[str]:
    """A service's Deployment or migration Job reads each of its secret settings from leadflow-secrets by
    name, and nothing else of it (no envFrom: another service's database password or admin key is not its
    business). Those in secrets.env.example are required, the others optional."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    problems = []
    if any("secretRef" in source for source in container.get("envFrom", [])):
        problems.append(f"{name}: must not take all of leadflow-secrets (envFrom)")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}
    expected = secret_setting_names(service)
    if set(refs) != expected or any(ref["key"] != variable for variable, ref in refs.items()):
        problems.append(f"{name}: should read exactly its secret settings {sorted(expected)} from leadflow-secrets, "
                        f"each under its own name")
    for variable, ref in refs.items():
        if bool(ref.get("optional")) == (variable in secret_keys):
            state = "required" if variable in secret_keys else "optional"
            problems.append(f"{name}: {variable} should be {state} (it is "
                            f"{'' if variable in secret_keys else 'not '}in secrets.env.example)")
    return problems


def _secret_refs(container: dict[str, Any]) -> dict[str, str]:
    """{variable: key of leadflow-secrets} of a container's secretKeyRef variables."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def k8s_console_problems(by_kind: dict[str, dict[str, dict[str, Any]]], settings: dict[str, Any],
                         secret_keys: set[str]) -> list[str]:
    """The console as the five, except that it takes only its own keys from leadflow-secrets (no
    envFrom of it): its provision-keys init container alone gets the services' admin keys."""
    problems = []
    known = setting_names(CONSOLE)
    for key in sorted(k for k in settings if k.startswith("CONSOLE_") and k not in known):
        problems.append(f"ConfigMap leadflow-settings: {key} is not a setting of the console")
    expected = {"CONSOLE_ENVIRONMENT": "production", "CONSOLE_HOST": "0.0.0.0", "CONSOLE_PORT": str(CONSOLE_PORT),
                **{f"CONSOLE_{name.upper()}_URL": f"http://{name}:{port}" for name, port in SERVICES.items()}}
    for key, value in expected.items():
        if str(settings.get(key)) != value:
            problems.append(f"ConfigMap leadflow-settings: {key} should be {value!r}")
    own = {"CONSOLE_DATABASE_URL", "CONSOLE_SECRET_KEY", "CONSOLE_ENCRYPTION_KEYS"}
    for key in sorted(own | {"CONSOLE_FIRST_ADMIN_PASSWORD"}):
        if key not in secret_keys:
            problems.append(f"secrets.env.example lacks {key}")
    deployment = by_kind.get("Deployment", {}).get(CONSOLE)
    if deployment is None:
        return [*problems, f"Deployment {CONSOLE} missing"]
    problems.extend(k8s_workload_problems(CONSOLE, CONSOLE_PORT, deployment, by_kind))
    pod = deployment["spec"]["template"]["spec"]
    serving = pod["containers"][0]
    provisioning = next((c for c in pod.get("initContainers", []) if c.get("args") == ["provision-keys"]), None)
    admin_keys = {f"{name.upper()}_ADMIN_API_KEY" for name in SERVICES}
    for container in [serving, *([provisioning] if provisioning else [])]:
        if any("secretRef" in source for source in container.get("envFrom", [])):
            problems.append(f"{CONSOLE}: {container['name']} must not take all of leadflow-secrets (envFrom)")
    if _secret_refs(serving) != {key: key for key in own}:
        problems.append(f"{CONSOLE}: the serving container should read exactly {sorted(own)} from leadflow-secrets")
    if provisioning is None:
        problems.append(f"{CONSOLE}: no provision-keys init container")
    elif _secret_refs(provisioning) != {key: key for key in own | admin_keys}:
        problems.append(f"{CONSOLE}: provision-keys should read its own keys and each <SERVICE>_ADMIN_API_KEY")
    job = by_kind.get("Job", {}).get(f"migrate-{CONSOLE}")
    if job is None:
        return [*problems, f"migration Job migrate-{CONSOLE} missing"]
    job_pod = job["spec"]["template"]["spec"]
    if [c.get("args") for c in job_pod.get("initContainers", [])] != [["migrate"]] or [
            c.get("args") for c in job_pod["containers"]] != [["seed-demo"]]:
        problems.append(f"migrate-{CONSOLE} should run `migrate`, then `seed-demo` (the first admin)")
    elif not admin_keys.isdisjoint(_secret_refs(job_pod["containers"][0]).values()):
        problems.append(f"migrate-{CONSOLE} must not read the services' admin keys")
    return problems


def check_topics() -> str:
    """The topic lists in the compose script and the k8s Job match leadflow_contracts.topics."""
    from leadflow_contracts import topics

    expected = list(topics.EVENT_TOPICS)
    script = (DEPLOY / "kafka-topics" / "create-topics.sh").read_text(encoding="utf-8")
    match = re.search(r'^TOPICS="([^"]+)"', script, re.MULTILINE)
    problems = []
    if not match or match.group(1).split() != expected:
        problems.append(f"create-topics.sh TOPICS should be {' '.join(expected)}")
    if '"$topic" "$topic.dlq"' not in script:
        problems.append("create-topics.sh should also create each <topic>.dlq")
    compacted = list(topics.COMPACTED_TOPICS)
    match = re.search(r'^COMPACTED_TOPICS="([^"]*)"', script, re.MULTILINE)
    if not match or match.group(1).split() != compacted or "cleanup.policy=compact" not in script:
        problems.append(f"create-topics.sh should compact {' '.join(compacted)} (COMPACTED_TOPICS)")
    job = load_yaml(DEPLOY / "k8s" / "topics-job.yaml")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    if shlex.split(env.get("TOPICS", "")) != expected:
        problems.append(f"k8s topics-job TOPICS should be {' '.join(expected)}")
    if shlex.split(env.get("COMPACTED_TOPICS", "")) != compacted:
        problems.append(f"k8s topics-job COMPACTED_TOPICS should be {' '.join(compacted)}")
    if env.get("PARTITIONS") != "6" or "TOPIC_PARTITIONS:-6" not in script:
        problems.append("topics need 6 partitions in both compose and k8s")
    created = [f"{t}{suffix}" for t in expected for suffix in ("", topics.DLQ_SUFFIX)]
    if sorted(created) != sorted(topics.all_topics()):
        problems.append("topic + .dlq pairs differ from leadflow_contracts.topics.all_topics()")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(created)} topics (with .dlq) agree with leadflow_contracts"


CHECKS: dict[str, Callable[[], str]] = {
    "yaml": check_yaml,
    "alerts": check_alerts,
    "metrics": check_metrics,
    "grafana": check_grafana,
    "compose": check_compose,
    "k8s": check_k8s,
    "topics": check_topics,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("check", choices=[*CHECKS, "dashboard-rules"])
    parser.add_argument("--out", type=Path, help="for dashboard-rules: where to write the rules file")
    args = parser.parse_args(argv)
    try:
        if args.check == "dashboard-rules":
            if args.out is None:
                parser.error("dashboard-rules needs --out")
            message = write_dashboard_rules(args.out)
        else:
            message = CHECKS[args.check]()
    except CheckFailed as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"{message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
