"""One version, one license, packages that build and install alone: what an adopter checks first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import venv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow_kit.version import VERSION
from leadflow_kit.webhooks import signed_headers

REPO = Path(__file__).resolve().parents[2]
MEMBERS = sorted(p.parent for p in [*REPO.glob("libs/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")])
SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")


def project(directory: Path) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    return table


def uv() -> str:
    """uv as `make` found it (UV), else on PATH, else where `make bootstrap` installs it."""
    candidates = [os.environ.get("UV"), shutil.which("uv"), str(Path.home() / ".local" / "bin" / "uv"),
                  str(REPO / ".tools" / "uv" / "bin" / "uv")]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    assert found is not None, "uv not found: run `make bootstrap`"
    return found


def workspace_version() -> str:
    return str(project(REPO)["version"])


def test_every_package_carries_the_one_version_and_the_apache_license() -> None:
    assert len(MEMBERS) == 10
    for directory in [REPO, *MEMBERS]:
        meta = project(directory)
        assert meta["version"] == workspace_version(), directory
        assert meta["license"] == "Apache-2.0", directory
    assert workspace_version() == VERSION
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


def test_the_changelog_and_the_image_label_name_the_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert released and released[0] == workspace_version()
    assert "## [Unreleased]" in changelog
    label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', (REPO / "Dockerfile").read_text())
    assert label is not None and label.group(1) == workspace_version()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([uv(), "build", "--all-packages", "--wheel", "--out-dir", str(out), "--quiet"], cwd=REPO,
                   check=True, timeout=300)
    return out


def test_every_package_builds_a_wheel_with_its_license(wheels: Path) -> None:
    built = sorted(w.name.split("-")[0] for w in wheels.glob("*.whl"))
    assert built == sorted(str(project(m)["name"]).replace("-", "_") for m in MEMBERS)
    for wheel in wheels.glob("*.whl"):
        assert f"-{workspace_version()}-" in wheel.name


def test_the_console_scripts_install_alone_from_the_wheels(wheels: Path, tmp_path: Path) -> None:
    """A fresh environment with only the built wheels (and third-party packages) runs each script."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(python), "--find-links", str(wheels),
                    "leadflow-cli", *(f"leadflow-{s}" for s in SERVICES)], check=True, timeout=600)
    cli = subprocess.run([str(env_dir / "bin" / "leadflow"), "--version"], capture_output=True, text=True,
                         check=True, timeout=60)
    assert cli.stdout.strip() == f"leadflow {workspace_version()}"
    for service in SERVICES:
        script = env_dir / "bin" / f"leadflow-{service}"
        shown = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True, timeout=60)
        assert shown.stdout.strip() == f"leadflow-{service} {workspace_version()}"
    # Installed from wheels, not from this checkout.
    where = subprocess.run([str(python), "-c", "import leadflow_capture; print(leadflow_capture.__file__)"],
                           capture_output=True, text=True, check=True, timeout=60)
    assert str(env_dir) in where.stdout


def test_webhooks_name_the_version_in_their_user_agent() -> None:
    headers = signed_headers(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "msg_1", datetime.now(UTC), "{}")
    assert headers["user-agent"] == f"LeadFlow-Webhooks/{workspace_version()}"


@pytest.mark.integration
async def test_healthz_and_the_api_document_report_the_version(infra: Any) -> None:
    prefix = infra.new_topic_prefix("release")
    await infra.create_topics(prefix, partitions=1)
    config = await infra.start_service("scoring", {}, topic_prefix=prefix, timeout=90)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            health = (await client.get(f"{config.url}/healthz")).json()
            document = (await client.get(f"{config.url}/openapi.json")).json()
    finally:
        await infra.stop_service("scoring")
    assert health == {"status": "ok", "service": "scoring", "version": workspace_version()}
    assert document["info"]["version"] == workspace_version()
