"""deploy/k8s: the manifests are valid Kubernetes objects, the image is the workspace's version, and
deploy/check_assets.py's k8s check (run by deploy/check.sh on the real files) catches a console wired with the
services' admin keys and a service given more of leadflow-secrets than its own secrets."""

from __future__ import annotations

import copy
import runpy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"

_check_assets = runpy.run_path(str(ROOT / "deploy" / "check_assets.py"))
k8s_console_problems = _check_assets["k8s_console_problems"]
k8s_secret_problems = _check_assets["k8s_secret_problems"]
SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")


def _by_kind() -> dict[str, dict[str, dict[str, Any]]]:
    docs = [doc for resource in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
            for doc in yaml.safe_load_all((K8S / resource).read_text()) if doc]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return by_kind


def _secret_keys() -> set[str]:
    return {line.split("=", 1)[0] for line in (K8S / "secrets.env.example").read_text().splitlines()
            if line and not line.startswith("#")}


def _problems(by_kind: dict[str, dict[str, dict[str, Any]]]) -> str:
    settings = by_kind["ConfigMap"]["leadflow-settings"]["data"]
    return "\n".join(k8s_console_problems(by_kind, settings, _secret_keys()))


def _service_secret_problems(by_kind: dict[str, dict[str, dict[str, Any]]]) -> str:
    return "\n".join(problem for name in SERVICES for problem in (
        *k8s_secret_problems(name, name, by_kind["Deployment"][name], _secret_keys()),
        *k8s_secret_problems(f"migrate-{name}", name, by_kind["Job"][f"migrate-{name}"], _secret_keys())))


@pytest.mark.parametrize("manifest", [*SERVICES, "console"])
def test_the_manifests_are_valid_kubernetes_objects(manifest: str) -> None:
    docs = [doc for doc in yaml.safe_load_all((K8S / f"{manifest}.yaml").read_text()) if doc]
    assert {doc["kind"] for doc in docs} >= {"Deployment", "Service", "PodDisruptionBudget", "Job"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_shipped_console_passes() -> None:
    assert _problems(_by_kind()) == ""


def test_the_shipped_services_read_only_their_own_secrets() -> None:
    assert _service_secret_problems(_by_kind()) == ""


@pytest.fixture
def by_kind() -> dict[str, dict[str, dict[str, Any]]]:
    return copy.deepcopy(_by_kind())


def test_a_console_given_the_whole_secret_or_no_key_bootstrap_fails(by_kind: dict[str, Any]) -> None:
    pod = by_kind["Deployment"]["console"]["spec"]["template"]["spec"]
    pod["containers"][0]["envFrom"].append({"secretRef": {"name": "leadflow-secrets"}})
    del pod["initContainers"]
    by_kind["ConfigMap"]["leadflow-settings"]["data"]["CONSOLE_ROUTING_URL"] = "http://routing:9999"
    problems = _problems(by_kind)
    assert "console: console must not take all of leadflow-secrets (envFrom)" in problems
    assert "console: no provision-keys init container" in problems
    assert "CONSOLE_ROUTING_URL should be 'http://routing:8004'" in problems


def test_a_service_given_the_whole_secret_or_anothers_key_fails(by_kind: dict[str, Any]) -> None:
    capture = by_kind["Deployment"]["capture"]["spec"]["template"]["spec"]["containers"][0]
    capture["envFrom"].append({"secretRef": {"name": "leadflow-secrets"}})
    person_key = next(e for e in capture["env"] if e["name"] == "CAPTURE_PERSON_KEY_SECRET")
    person_key["valueFrom"]["secretKeyRef"]["optional"] = True
    routing_job = by_kind["Job"]["migrate-routing"]["spec"]["template"]["spec"]["containers"][0]
    routing_job["env"].append({"name": "SLA_DATABASE_URL",
                               "valueFrom": {"secretKeyRef": {"name": "leadflow-secrets", "key": "SLA_DATABASE_URL"}}})
    sla = by_kind["Deployment"]["sla"]["spec"]["template"]["spec"]["containers"][0]
    sla["env"] = [e for e in sla["env"] if e["name"] != "SLA_WEBHOOK_ENCRYPTION_KEYS"]
    problems = _service_secret_problems(by_kind)
    assert "capture: must not take all of leadflow-secrets (envFrom)" in problems
    assert "capture: CAPTURE_PERSON_KEY_SECRET should be required (it is in secrets.env.example)" in problems
    assert "migrate-routing: should read exactly its secret settings" in problems
    assert "sla: should read exactly its secret settings" in problems
    assert "enrichment" not in problems


def test_an_admin_key_in_the_consoles_serving_container_fails(by_kind: dict[str, Any]) -> None:
    serving = by_kind["Deployment"]["console"]["spec"]["template"]["spec"]["containers"][0]
    serving["env"].append({"name": "SLA_ADMIN_API_KEY",
                           "valueFrom": {"secretKeyRef": {"name": "leadflow-secrets", "key": "SLA_ADMIN_API_KEY"}}})
    assert "the serving container should read exactly" in _problems(by_kind)


def test_the_image_is_the_workspace_version() -> None:
    images = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert images == [{"name": "leadflow", "newName": "leadflow", "newTag": workspace}]
    # A manifest applied on its own (kubectl apply -f) runs the same image as the kustomization.
    pods = [doc["spec"]["template"]["spec"] for kind in ("Deployment", "Job") for doc in _by_kind()[kind].values()]
    containers = [c for pod in pods for c in (*pod.get("initContainers", []), *pod["containers"])]
    assert {c["image"] for c in containers if c["image"].startswith("leadflow")} == {f"leadflow:{workspace}"}
