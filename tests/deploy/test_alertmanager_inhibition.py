"""The Alertmanager config on a real Alertmanager (Debian's prometheus-alertmanager): page and
ticket alerts reach their receivers, and the inhibition rules mute exactly what they should.

amtool can test routes but not inhibitions, hence a running Alertmanager. Its webhook receivers
are pointed at a local HTTP server; routes, grouping and inhibitions stay as committed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def _alertmanager_binary() -> str:
    for candidate in (ROOT / ".tools" / "prom" / "usr" / "bin" / "prometheus-alertmanager",):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found:
        pytest.fail("prometheus-alertmanager not found: run deploy/install-tools.sh", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.notifications.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: _Receiver) -> Iterator[str]:
    config = yaml.safe_load(CONFIG.read_text())
    for item in config["receivers"]:
        for hook in item["webhook_configs"]:
            hook["url"] = f"http://127.0.0.1:{receiver.server_address[1]}{urlsplit(hook['url']).path}"
    # Only the waiting is shortened, so the test does not sit out group_wait.
    config["route"]["group_wait"] = "1s"
    for route in config["route"]["routes"]:
        route["group_wait"] = "1s"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [
            _alertmanager_binary(),
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "alertmanager.log", "w"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start:\n{(tmp_path / 'alertmanager.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": name}}


FIRING = [
    _alert("LeadflowServiceDown", severity="page", service="routing", job="leadflow-routing"),
    _alert("LeadflowPipelineLatencyHigh", severity="ticket", stage="routed"),
    _alert("LeadflowNoLeadsCaptured", severity="ticket"),
    _alert("LeadflowSlaBudgetBurn1h", severity="page", slo="sla-first-touch"),
    _alert("LeadflowSlaBudgetBurn3d", severity="ticket", slo="sla-first-touch"),
    _alert("LeadflowSlaBreachRateHigh", severity="ticket", tier="warm"),
    _alert("LeadflowOutboxStalled", severity="page", service="capture"),
    _alert("LeadflowOutboxBacklogHigh", severity="page", service="capture"),
    _alert("LeadflowOutboxBacklogHigh", severity="page", service="routing"),
    _alert("LeadflowDeadLettersGrowing", severity="ticket", service="scoring", topic="leads.enriched"),
]


def _key(alert: dict[str, Any]) -> tuple[str, str]:
    return alert["labels"]["alertname"], alert["labels"].get("service", "")


def test_inhibitions_mute_exactly_the_intended_alerts_and_severities_route(
    alertmanager: str, receiver: _Receiver
) -> None:
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=FIRING, timeout=5).status_code == 200

    expected_muted = {
        ("LeadflowPipelineLatencyHigh", ""),
        ("LeadflowNoLeadsCaptured", ""),
        ("LeadflowSlaBudgetBurn3d", ""),
        ("LeadflowSlaBreachRateHigh", ""),
        ("LeadflowOutboxBacklogHigh", "capture"),
    }
    deadline = time.monotonic() + 20
    while True:
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        muted = {_key(a) for a in alerts if a["status"]["inhibitedBy"]}
        if (len(alerts) == len(FIRING) and muted == expected_muted) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(alerts) == len(FIRING)
    assert muted == expected_muted

    # Every alert that is not muted reaches the receiver its severity names, and nothing else does.
    expected_paths = {
        _key(a): "/v1/page" if a["labels"]["severity"] == "page" else "/v1/ticket"
        for a in FIRING
        if _key(a) not in expected_muted
    }
    deadline = time.monotonic() + 30
    while True:
        delivered = {_key(alert): path for path, body in list(receiver.notifications) for alert in body["alerts"]}
        if delivered == expected_paths or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert delivered == expected_paths
