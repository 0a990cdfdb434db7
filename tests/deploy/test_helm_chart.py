"""The Helm chart (deploy/helm/leadflow): `helm lint`, `helm template` of the three value sets in
deploy/helm/ci, every rendered manifest validated offline against the Kubernetes schemas
(kubernetes-validate) or, for the KEDA and Prometheus Operator kinds, against the small schemas in
tests/deploy/crd_schemas, and what the manifests say checked against the services themselves.

helm is installed by `make deps` into .tools/bin (go install, see the Makefile); without it these
tests fail, they never skip.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from leadflow_console.service_keys import AdminKeys
from leadflow_contracts import topics
from leadflow_stack.user_settings import secret_setting_names

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "leadflow"
CI_VALUES = ROOT / "deploy" / "helm" / "ci"
HELM = ROOT / ".tools" / "bin" / "helm"
SHIPPED_RULES = ROOT / "deploy" / "prometheus" / "rules" / "leadflow.rules.yml"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion >= 1.25) has every API it uses;
# validate against a current one, strictly (unknown fields are errors).
KUBERNETES_VERSION = "1.33.0"
SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")
CONSUMERS = SERVICES[1:]
CONSOLE = "console"
VALUE_SETS = ("defaults", "managed-cloud", "minimal")


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM.is_file(), f"helm is missing at {HELM}: run `make deps` (go install helm.sh/helm/v4/cmd/helm@v4.3.2)"
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def _template(*args: str) -> subprocess.CompletedProcess[str]:
    return _helm("template", "leadflow", str(CHART), "--namespace", "leadflow", *args)


@functools.cache
def rendered(value_set: str) -> tuple[dict[str, Any], ...]:
    result = _template("-f", str(CI_VALUES / f"{value_set}.yaml"))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by their app.kubernetes.io/name label (or their name)."""
    found = {}
    for doc in docs:
        if doc["kind"] == kind:
            labels = doc["metadata"].get("labels", {})
            found[labels.get("app.kubernetes.io/name", doc["metadata"]["name"])] = doc
    return found


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _init_container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["initContainers"]
    return dict(container)


def _env(doc: dict[str, Any], container: dict[str, Any] | None = None) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom"))
            for item in (container or _container(doc))["env"]}


def _settings_class(service: str) -> Any:
    return importlib.import_module(f"leadflow_{service}.settings").Settings


# --- helm itself -------------------------------------------------------------------------------


def test_helm_is_the_pinned_version() -> None:
    assert _helm("version", "--short").returncode == 0
    # `go install` leaves helm's own version string at "v4.3"; the module version is in the binary.
    go = shutil.which("go") or "/usr/local/go/bin/go"
    built = subprocess.run([go, "version", "-m", str(HELM)], capture_output=True, text=True, check=True).stdout
    assert "\tmod\thelm.sh/helm/v4\tv4.3.2\t" in built, built


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_passes(value_set: str) -> None:
    result = _helm("lint", str(CHART), "--strict", "-f", str(CI_VALUES / f"{value_set}.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_manifest_is_valid(value_set: str) -> None:
    crd_schemas = {path.stem: json.loads(path.read_text()) for path in CRD_SCHEMAS.glob("*.json")}
    kinds = set()
    for doc in rendered(value_set):
        kinds.add(doc["kind"])
        if doc["kind"] in crd_schemas:
            jsonschema.validate(doc, crd_schemas[doc["kind"]])
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job"} <= kinds


def test_the_crd_schemas_reject_a_wrong_manifest() -> None:
    scaled = _of_kind(rendered("managed-cloud"), "ScaledObject")["enrichment"]
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 100
    schema = json.loads((CRD_SCHEMAS / "ScaledObject.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_values_outside_the_schema_are_refused() -> None:
    relative = _template("--set", "runbookBaseUrl=docs/runbook.md")
    assert relative.returncode != 0 and "runbookBaseUrl" in relative.stderr
    sasl_without_secret = _template("--set", "kafka.securityProtocol=SASL_SSL")
    assert sasl_without_secret.returncode != 0 and "existingSecret" in sasl_without_secret.stderr
    unknown = _template("--set", "kafka.bootstrapServer=typo:9092")
    assert unknown.returncode != 0 and "bootstrapServer" in unknown.stderr


# --- workloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_service_runs_with_probes_resources_disruption_budget_and_spread(value_set: str) -> None:
    docs = rendered(value_set)
    deployments = _of_kind(docs, "Deployment")
    assert set(deployments) == {*SERVICES, CONSOLE}
    budgets = _of_kind(docs, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        container = _container(deployment)
        assert container["args"] == ["serve"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
        budget = budgets[name]["spec"]["selector"]["matchLabels"]
        assert budget == {**selector, "app.kubernetes.io/component": CONSOLE if name == CONSOLE else "service"}
        assert "helm.sh/hook" not in deployment["metadata"].get("annotations", {})


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_migrations_are_hook_jobs_that_run_before_any_pod_needs_them(value_set: str) -> None:
    docs = rendered(value_set)
    jobs = {name: job for name, job in _of_kind(docs, "Job").items() if name in SERVICES}
    assert set(jobs) == set(SERVICES)
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
        pod = job["spec"]["template"]["spec"]
        # The image's entrypoint runs `python -m leadflow_<LEADFLOW_SERVICE> migrate`.
        assert pod["restartPolicy"] == "Never"
        assert _container(job)["args"] == ["migrate"]
        assert _env(job) == _env(_of_kind(docs, "Deployment")[name])
    hooks = [doc for doc in docs if "helm.sh/hook" in doc["metadata"].get("annotations", {})]
    # The chart-made secret exists before the Jobs that read it.
    for secret in (doc for doc in hooks if doc["kind"] == "Secret"):
        assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    entrypoint = (ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()
    assert 'exec python -m "leadflow_${LEADFLOW_SERVICE}" "$@"' in entrypoint
    assert "capture|enrichment|scoring|routing|sla|console)" in entrypoint


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_consoles_schema_and_first_admin_come_from_a_hook_job_before_its_pods(value_set: str) -> None:
    docs = rendered(value_set)
    job = _of_kind(docs, "Job")[CONSOLE]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    assert _init_container(job)["args"] == ["migrate"]
    assert _container(job)["args"] == ["seed-demo"]
    serving = _env(_of_kind(docs, "Deployment")[CONSOLE])
    assert _env(job, _init_container(job)) == serving
    first_admin = _env(job)
    password_file = first_admin.pop("CONSOLE_FIRST_ADMIN_PASSWORD_FILE")
    assert first_admin == serving
    mount = next(m for m in _container(job)["volumeMounts"] if password_file.startswith(m["mountPath"] + "/"))
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["items"] == [{"key": "CONSOLE_FIRST_ADMIN_PASSWORD",
                                          "path": password_file.rsplit("/", 1)[1]}]
    assert volume["secret"]["optional"] is True  # seed-demo then makes no admin


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_console_serves_without_any_admin_key_and_provisions_its_own_first(value_set: str) -> None:
    deployment = _of_kind(rendered(value_set), "Deployment")[CONSOLE]
    serving, provisioning = _container(deployment), _init_container(deployment)
    assert provisioning["args"] == ["provision-keys"] and serving["args"] == ["serve"]
    assert "envFrom" not in serving and "envFrom" not in provisioning
    assert not [name for name in _env(deployment) if name.endswith("ADMIN_API_KEY")]
    admin_keys = {name: ref for name, ref in _env(deployment, provisioning).items() if name.endswith("ADMIN_API_KEY")}
    # Under the services' own names, as the console's provision-keys reads them.
    assert {name.lower() for name in admin_keys} == set(AdminKeys.model_fields)
    assert set(admin_keys) == {f"{name.upper()}_ADMIN_API_KEY" for name in SERVICES}
    assert all(ref["secretKeyRef"]["key"] == name for name, ref in admin_keys.items())
    assert {k: v for k, v in _env(deployment, provisioning).items() if k not in admin_keys} == _env(deployment)


def test_the_topics_job_creates_every_event_topic_and_its_dead_letter_topic() -> None:
    job = _of_kind(rendered("defaults"), "Job")["kafka-topics"]
    env = _env(job)
    assert env["TOPICS"].split() == list(topics.EVENT_TOPICS)
    assert env["COMPACTED_TOPICS"].split() == list(topics.COMPACTED_TOPICS)
    assert "cleanup.policy=compact" in _container(job)["args"][0]
    assert '"$topic.dlq"' in _container(job)["args"][0] and '"$PREFIX$name"' in _container(job)["args"][0]
    assert job["metadata"]["annotations"]["helm.sh/hook-weight"] == "-5"
    assert "kafka-topics" not in _of_kind(rendered("managed-cloud"), "Job")


# --- settings reach the services ---------------------------------------------------------------


def _resolved_env(docs: tuple[dict[str, Any], ...], service: str, secrets: dict[str, str]) -> dict[str, str]:
    """The environment a service's container gets, with Secret references filled from `secrets`
    (by key; an optional one `secrets` lacks is left out) and $(VAR) references expanded as the kubelet does."""
    env: dict[str, str] = {}
    for item in _container(_of_kind(docs, "Deployment")[service])["env"]:
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] in secrets or not ref.get("optional"):
                env[item["name"]] = secrets[ref["key"]]
    return env


def _app_secret(service: str) -> dict[str, str]:
    prefix = service.upper()
    return {
        f"{prefix}_ADMIN_API_KEY": "k" * 40,
        "CAPTURE_PERSON_KEY_SECRET": "p" * 40,
        f"{prefix}_WEBHOOK_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        # routing in production refuses to start on the published demo secret, demo or not.
        "ROUTING_DEMO_WEBHOOK_SECRET": "d" * 40,
    }


@pytest.mark.parametrize("service", [*SERVICES, CONSOLE])
def test_every_variable_the_chart_sets_is_a_setting_of_its_service(service: str) -> None:
    prefix = service.upper() + "_"
    fields = set(_settings_class(service).model_fields)
    for value_set in VALUE_SETS:
        for name in _env(_of_kind(rendered(value_set), "Deployment")[service]):
            if name in ("LEADFLOW_SERVICE", "PGSSLROOTCERT", f"{prefix}DATABASE_PASSWORD"):
                continue
            assert name.startswith(prefix), name
            assert name.removeprefix(prefix).lower() in fields, f"{name} ({value_set}) is no setting of {service}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_each_service_reads_only_its_own_secrets_by_name(value_set: str) -> None:
    """No service's pod gets the whole app secret (another service's database password, admin key or
    encryption keys): its Deployment and migration Job read each of its own secret settings by name."""
    docs = rendered(value_set)
    app_secret = "leadflow-app" if value_set == "managed-cloud" else "leadflow-secrets"
    values = yaml.safe_load((CI_VALUES / f"{value_set}.yaml").read_text()) or {}
    for service in SERVICES:
        database = ((values.get("services") or {}).get(service) or {}).get("database") or {}
        # The Kafka password comes from kafka.sasl's own Secret; the database's from database.* when set.
        expected = secret_setting_names(service) - {f"{service.upper()}_KAFKA_SASL_PASSWORD"}
        if database.get("urlSecret") or database.get("passwordSecret"):
            expected -= {f"{service.upper()}_DATABASE_URL"}
        workloads = (_of_kind(docs, "Deployment")[service], _of_kind(docs, "Job")[service])
        for container in map(_container, workloads):
            assert "envFrom" not in container
            refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"]
                    if "secretKeyRef" in item.get("valueFrom", {})}
            from_app = {name: ref for name, ref in refs.items() if ref["name"] == app_secret}
            assert set(from_app) == expected, f"{service} ({value_set})"
            assert all(ref["key"] == name for name, ref in from_app.items())
            # Only the database's URL is required of the Secret; the settings name the rest production needs.
            assert {name for name, ref in from_app.items() if not ref.get("optional")} <= {
                f"{service.upper()}_DATABASE_URL"}


@pytest.mark.parametrize("service", SERVICES)
def test_the_managed_cloud_environment_loads_into_each_services_settings(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = rendered("managed-cloud")
    secrets = {"username": "leadflow", "password": "s3cret-Pass_word", "url": (
        "postgresql+asyncpg://leadflow_routing:pw@db.example.com:5432/leadflow_routing?ssl=verify-full")}
    # The app secret's keys reach the settings through the chart's references alone.
    env = _resolved_env(docs, service, {**secrets, **_app_secret(service)})
    # The settings check that the CA file exists; the pod has it at the mounted path, this test a copy.
    mounted_ca = tmp_path / "ca.crt"
    mounted_ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for name, value in env.items():
        monkeypatch.setenv(name, str(mounted_ca) if name.endswith("_KAFKA_SSL_CAFILE") else value)
    settings = _settings_class(service)()
    assert settings.environment == "production"
    assert settings.kafka_bootstrap_servers == "pkc-12345.eu-west-1.aws.confluent.cloud:9092"
    prefix = service.upper()
    assert env[f"{prefix}_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env[f"{prefix}_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env[f"{prefix}_KAFKA_SASL_USERNAME"] == "leadflow"
    assert env[f"{prefix}_KAFKA_SASL_PASSWORD"] == "s3cret-Pass_word"
    assert env[f"{prefix}_KAFKA_SSL_CAFILE"] == "/etc/leadflow/kafka-ca/ca.crt"
    assert env["PGSSLROOTCERT"] == "/etc/leadflow/postgresql-ca/ca.crt"
    mounts = {m["mountPath"] for m in _container(_of_kind(docs, "Deployment")[service])["volumeMounts"]}
    assert {"/etc/leadflow/kafka-ca", "/etc/leadflow/postgresql-ca"} <= mounts
    if service == "capture":
        assert settings.public_base_url == "https://leads.example.com"
        assert settings.trusted_proxies == ["10.42.0.0/16"]
        assert settings.rate_limit_ip_per_minute == 240
        assert settings.privacy_export_urls == {
            name: f"http://leadflow-{name}:{port}" for name, port in
            (("enrichment", 8002), ("scoring", 8003), ("routing", 8004), ("sla", 8005))}
    if service != "routing":
        assert settings.database_url == (
            f"postgresql+asyncpg://leadflow_{service}:s3cret-Pass_word@"
            f"leadflow.abcdefgh.eu-west-1.rds.amazonaws.com:5432/leadflow_{service}?ssl=verify-full")


def test_the_managed_cloud_environment_loads_into_the_consoles_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    encryption_key = Fernet.generate_key().decode()
    env = _resolved_env(rendered("managed-cloud"), CONSOLE, {
        "password": "s3cret-Pass_word", "CONSOLE_SECRET_KEY": "s" * 40, "CONSOLE_ENCRYPTION_KEYS": encryption_key})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = _settings_class(CONSOLE)()
    assert settings.environment == "production" and settings.port == 8000
    assert settings.database_url == ("postgresql+asyncpg://leadflow_console:s3cret-Pass_word@"
                                     "leadflow.abcdefgh.eu-west-1.rds.amazonaws.com:5432/leadflow_console?ssl=verify-full")
    assert {name: settings.service_url(name) for name in SERVICES} == {
        name: f"http://leadflow-{name}:{port}" for name, port in
        (("capture", 8001), ("enrichment", 8002), ("scoring", 8003), ("routing", 8004), ("sla", 8005))}
    assert settings.capture_public() == "https://leads.example.com"
    assert settings.trusted_hosts == ["console.example.com"]
    assert settings.services_without_key() == list(SERVICES)  # provisioned, not given
    monkeypatch.delenv("CONSOLE_ENCRYPTION_KEYS")
    with pytest.raises(ValueError, match="encryption_keys must be set"):
        _settings_class(CONSOLE)()


def test_the_database_url_asks_for_tls_in_a_form_asyncpg_accepts() -> None:
    # libpq's `sslmode` would reach asyncpg.connect() as an unknown keyword; `ssl` is its own.
    env = _resolved_env(rendered("managed-cloud"), "scoring", {"username": "u", "password": "pw"})
    url = make_url(env["SCORING_DATABASE_URL"])
    _, kwargs = create_async_engine(url).dialect.create_connect_args(url)
    assert kwargs["ssl"] == "verify-full"
    inspect.signature(asyncpg.connect).bind(**kwargs)
    with pytest.raises(TypeError):
        inspect.signature(asyncpg.connect).bind(**{**kwargs, "sslmode": "require"})


# --- autoscaling -------------------------------------------------------------------------------


def test_consumers_scale_on_their_groups_lag_within_the_partition_count() -> None:
    docs = rendered("managed-cloud")
    scaled = _of_kind(docs, "ScaledObject")
    assert set(scaled) == set(CONSUMERS)
    for name, obj in scaled.items():
        assert obj["spec"]["scaleTargetRef"]["name"] == f"leadflow-{name}"
        assert obj["spec"]["maxReplicaCount"] <= 6
        for trigger in obj["spec"]["triggers"]:
            assert trigger["type"] == "kafka"
            metadata = trigger["metadata"]
            assert metadata["consumerGroup"] == _settings_class(name)().consumer_group
            assert metadata["topic"] in topics.EVENT_TOPICS
            assert (metadata["sasl"], metadata["tls"]) == ("scram_sha512", "enable")
            assert trigger["authenticationRef"]["name"] == "leadflow-kafka"
        # An autoscaler owns the replica count.
        assert "replicas" not in _of_kind(docs, "Deployment")[name]["spec"]
    sla_topics = {t["metadata"]["topic"] for t in scaled["sla"]["spec"]["triggers"]}
    assert sla_topics == set(topics.LEAD_TOPICS)
    auth = _of_kind(docs, "TriggerAuthentication")["leadflow-kafka"]["spec"]["secretTargetRef"]
    assert {(ref["parameter"], ref["name"]) for ref in auth} == {
        ("username", "leadflow-kafka"), ("password", "leadflow-kafka"), ("ca", "leadflow-kafka-ca")}
    hpa = _of_kind(docs, "HorizontalPodAutoscaler")["capture"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "leadflow-capture"


def test_more_replicas_than_partitions_is_refused() -> None:
    result = _template("--set", "keda.enabled=true", "--set", "services.scoring.autoscaling.maxReplicas=12")
    assert result.returncode != 0
    assert "services.scoring.autoscaling.maxReplicas (12) exceeds kafka.topicPartitions (6)" in result.stderr


def test_the_minimal_set_has_no_autoscaling_monitoring_or_policies() -> None:
    docs = rendered("minimal")
    kinds = {doc["kind"] for doc in docs}
    assert not kinds & {"HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor", "PrometheusRule",
                        "NetworkPolicy", "Ingress"}
    assert {d["spec"]["replicas"] for d in _of_kind(docs, "Deployment").values()} == {1}


# --- network -----------------------------------------------------------------------------------


def _under_prefix(path: str, prefix: str) -> bool:
    """Kubernetes' pathType Prefix: element by element, a trailing slash ignored."""
    elements = [e for e in prefix.split("/") if e]
    return [e for e in path.split("/") if e][:len(elements)] == elements


def test_capture_is_published_with_the_trusted_proxy_settings() -> None:
    docs = rendered("defaults")
    ingress = _of_kind(docs, "Ingress")["capture"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert {p["backend"]["service"]["name"] for p in paths} == {"leadflow-capture"}
    assert {p["pathType"] for p in paths} == {"Prefix"}
    # Every public route of capture is published, and nothing else of it: not its admin API, metrics or docs.
    from leadflow_capture import activities, api

    public = {route.path for router in (api.router, activities.router) for route in router.routes}  # type: ignore[attr-defined]
    assert public and all(any(_under_prefix(path, p["path"]) for p in paths) for path in public), public
    for internal in ("/metrics", "/docs", "/openapi.json", "/healthz", "/readyz", "/v1/admin/forms/demo",
                     "/v1/admin/api-keys", "/v1/admin/privacy/people"):
        assert not any(_under_prefix(internal, p["path"]) for p in paths), internal
    env = _env(_of_kind(docs, "Deployment")["capture"])
    assert json.loads(env["CAPTURE_TRUSTED_PROXIES"]) == ["10.0.0.0/8"]
    assert env["CAPTURE_PUBLIC_BASE_URL"] == "https://capture.example.com"


def test_only_capture_is_reachable_from_outside_and_services_reach_only_what_they_need() -> None:
    policies = _of_kind(rendered("defaults"), "NetworkPolicy")
    deny = policies["leadflow-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    capture_pods = {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "capture", "app.kubernetes.io/instance": "leadflow"}}}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ingress_nginx = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    console_pods = {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "console", "app.kubernetes.io/instance": "leadflow"}}}
    for name in SERVICES:
        spec = policies[name]["spec"]
        (rule,) = spec["ingress"]
        assert rule["from"] == ([ingress_nginx] if name == "capture" else [capture_pods]) + [monitoring, console_pods]
        ports = {port["port"] for egress in spec["egress"] for port in egress["ports"]}
        internet = [e for e in spec["egress"] if any("ipBlock" in peer for peer in e["to"])]
        expected = {53, 9092, 5432} | ({443} if name in ("routing", "sla") else set())
        if name == "capture":
            expected |= {8002, 8003, 8004, 8005}
        assert ports == expected, name
        if name in ("routing", "sla"):
            (https,) = internet
            assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
            assert "10.0.0.0/8" in https["to"][0]["ipBlock"]["except"]
        else:
            assert not internet
    console = policies[CONSOLE]["spec"]
    (rule,) = console["ingress"]
    assert rule == {"ports": [{"port": 8000, "protocol": "TCP"}], "from": [ingress_nginx]}
    assert {port["port"] for egress in console["egress"] for port in egress["ports"]} == {
        53, 5432, 8001, 8002, 8003, 8004, 8005}
    assert not [e for e in console["egress"] if any("ipBlock" in peer for peer in e["to"])]


def test_the_console_is_published_only_when_asked_at_its_own_host() -> None:
    assert CONSOLE not in _of_kind(rendered("defaults"), "Ingress")
    ingress = _of_kind(rendered("managed-cloud"), "Ingress")[CONSOLE]["spec"]
    assert ingress["tls"] == [{"hosts": ["console.example.com"], "secretName": "console-example-com-tls"}]
    (rule,) = ingress["rules"]
    assert rule["host"] == "console.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "leadflow-console", "port": {"name": "http"}}


# --- monitoring --------------------------------------------------------------------------------


def test_the_charts_rules_file_is_the_shipped_one() -> None:
    assert (CHART / "files" / "leadflow.rules.yml").read_bytes() == SHIPPED_RULES.read_bytes()


def test_the_prometheus_rule_is_the_shipped_rules_with_absolute_runbook_urls() -> None:
    docs = rendered("managed-cloud")
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    base = "https://git.example.com/platform/leadflow/-/blob/v0.2.0/docs/runbook.md"
    shipped = yaml.safe_load(SHIPPED_RULES.read_text())
    alerts = 0
    for group in shipped["groups"]:
        for item in group["rules"]:
            if "runbook_url" in item.get("annotations", {}):
                anchor = item["annotations"]["runbook_url"].split("#", 1)[1]
                assert anchor == item["alert"].lower()
                item["annotations"]["runbook_url"] = f"{base}#{anchor}"
                alerts += 1
    assert alerts >= 9
    assert rule["spec"] == {"groups": shipped["groups"]}


def test_the_service_monitor_keeps_the_job_names_the_rules_select() -> None:
    monitor = _of_kind(rendered("managed-cloud"), "ServiceMonitor")["leadflow"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["relabelings"] == [{
        "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
        "targetLabel": "job", "replacement": "leadflow-$1"}]
    assert 'up{job=~"leadflow-.*"}' in SHIPPED_RULES.read_text()
    services = _of_kind(rendered("managed-cloud"), "Service")
    # The console serves no /metrics: its Service is not one the monitor selects.
    assert {name: s["metadata"]["labels"]["app.kubernetes.io/component"] for name, s in services.items()} == {
        **dict.fromkeys(SERVICES, "service"), CONSOLE: CONSOLE}


def test_the_chart_carries_the_workspace_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == chart["appVersion"] == workspace
    image = _container(_of_kind(rendered("defaults"), "Deployment")["capture"])["image"]
    assert image == f"leadflow:{workspace}"
