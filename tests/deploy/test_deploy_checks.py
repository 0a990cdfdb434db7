"""deploy/check.sh as part of the suite: alert rules and their promtool tests, the Prometheus and
Alertmanager configs, and the compose, Kubernetes and Grafana files.

promtool and amtool come from Debian's prometheus packages (deploy/install-tools.sh); without
them the check fails, it never skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "deploy" / "check.sh"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def _run_check(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "LEADFLOW_SOURCE_ROOT": str(ROOT)}
    return subprocess.run(
        ["bash", str(root / "deploy" / "check.sh")], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )


def _summary(result: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    lines = result.stdout.strip().splitlines()
    match = SUMMARY.match(lines[-1]) if lines else None
    assert match, f"no summary line in:\n{result.stdout}\n{result.stderr}"
    return int(match.group(1)), int(match.group(2))


def test_every_deploy_check_passes() -> None:
    result = _run_check(ROOT)
    passed, failed = _summary(result)
    assert result.returncode == 0 and failed == 0, result.stdout + result.stderr
    assert passed == sum(line.startswith('check "') for line in CHECK.read_text().splitlines())
    assert "PASS promtool test rules" in result.stdout


def test_a_wrong_alert_expectation_fails_the_check(tmp_path: Path) -> None:
    # A copy of the assets with one expected annotation changed: promtool must catch it.
    for part in ("deploy", "docs"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("secrets.env", "__pycache__"))
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    tools = ROOT / ".tools"
    if tools.exists():
        (tmp_path / ".tools").symlink_to(tools)
    tests = tmp_path / "deploy" / "prometheus" / "tests" / "pipeline.test.yml"
    original = 'summary: "LeadFlow routing is down (routing:8004)"'
    assert original in tests.read_text()
    tests.write_text(tests.read_text().replace(original, 'summary: "LeadFlow routing is up"'))

    result = _run_check(tmp_path)
    passed, failed = _summary(result)
    assert result.returncode != 0
    checks = sum(line.startswith('check "') for line in CHECK.read_text().splitlines())
    assert (passed, failed) == (checks - 1, 1), result.stdout
    assert "FAIL promtool test rules" in result.stdout
    assert "LeadFlow routing is up" in result.stdout
