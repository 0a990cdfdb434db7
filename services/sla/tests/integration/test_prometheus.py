"""A real Prometheus (Debian's binary) scrapes the running sla service and evaluates the shipped alert
rules: a hot lead nobody touches, under a shortened policy, makes LeadflowHotLeadSlaBreached fire."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from leadflow_contracts import LeadRouted, RoutedOwner
from leadflow_kit.app import app_runtime
from leadflow_sla.app import create_app

RULES = Path(__file__).resolve().parents[4] / "deploy" / "prometheus" / "rules" / "leadflow.rules.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_breach_alert_fires_on_real_scraped_data(sla_env: Any) -> None:
    binary = shutil.which("prometheus")
    assert binary, "the prometheus binary (Debian package `prometheus`) is required"
    assert RULES.exists(), f"alert rules missing at {RULES}"

    sla_port = free_port()
    settings = sla_env.settings(port=sla_port, scheduler_interval_seconds=0.2)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=sla_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    workdir = Path(tempfile.mkdtemp(prefix="sla-prometheus-"))
    prometheus: asyncio.subprocess.Process | None = None
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "sla did not start serving"
        await asyncio.wait_for(app_runtime(app).runner.assigned.wait(), 30)

        prom_port = free_port()
        (workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n  - job_name: leadflow-sla\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{sla_port}']\n"
        )
        prometheus = await asyncio.create_subprocess_exec(
            binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        prom = f"http://127.0.0.1:{prom_port}"
        admin = {"Authorization": "Bearer sla-test-admin-key-0123456789"}

        async with httpx.AsyncClient(timeout=5.0) as http:
            async def scraping() -> Any:
                try:
                    targets = (await http.get(f"{prom}/api/v1/targets")).json()["data"]["activeTargets"]
                except (httpx.HTTPError, ValueError):  # not listening, or not ready and answering in plain text
                    return None
                return targets and targets[0]["health"] == "up"

            await sla_env.eventually(scraping, timeout=30, interval=0.2)

            # A hot lead must be touched within 2 seconds now; nobody touches this one.
            patched = await http.patch(f"http://127.0.0.1:{sla_port}/v1/admin/sla-policies/default-hot",
                                       json={"target_seconds": 2}, headers=admin)
            assert patched.status_code == 200, patched.text
            lead_id = sla_env.new_lead_id()
            now = datetime.now(UTC)
            data = LeadRouted(lead_id=lead_id, assignment_id="as-prom", reason="test", tier="hot",
                              owner=RoutedOwner(rep_id="rep-slow", team_id="team-prom"))
            await sla_env.send(sla_env.lead_event(data, lead_id, now, now, "routing"))

            async def firing() -> Any:
                alerts = (await http.get(f"{prom}/api/v1/alerts")).json()["data"]["alerts"]
                return [a for a in alerts if a["labels"]["alertname"] == "LeadflowHotLeadSlaBreached"
                        and a["state"] == "firing"]

            alerts = await sla_env.eventually(firing, timeout=45, interval=0.25)
            assert alerts[0]["labels"]["team"] == "team-prom"
            assert alerts[0]["labels"]["severity"] == "page"
            assert alerts[0]["annotations"]["runbook_url"].endswith("#leadflowhotleadslabreached")

            scraped = (await http.get(f"{prom}/api/v1/query",
                                      params={"query": 'leadflow_sla_breaches_total{tier="hot"}'})).json()
            values = {r["metric"]["team"]: float(r["value"][1]) for r in scraped["data"]["result"]}
            assert values == {"team-prom": 1.0}
    finally:
        if prometheus is not None and prometheus.returncode is None:
            prometheus.terminate()
            try:
                await asyncio.wait_for(prometheus.wait(), 10)
            except TimeoutError:
                prometheus.kill()
                await prometheus.wait()
        server.should_exit = True
        await serving
        shutil.rmtree(workdir, ignore_errors=True)
