"""Helpers for the end-to-end tests: the pipeline handle, a verifying CRM receiver, polling."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response

from leadflow_stack import testing
from leadflow_stack.procs import free_port

SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")
ADMIN_KEY = "dev-admin-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"leadflow-e2e-webhook-secret-0123").decode()


@dataclass
class WebhookReceiver:
    """A CRM stand-in that verifies each delivery's Standard Webhooks signature."""

    secret: str
    port: int = field(default_factory=free_port)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crm/leads"

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return Response(status_code=401)
        self.deliveries.append(
            {"webhook_id": request.headers["webhook-id"], "payload": payload, "received_at": time.time()}
        )
        return Response(status_code=204)

    def lead_ids(self) -> list[str]:
        found = []
        for delivery in self.deliveries:
            data = delivery["payload"].get("data", {})
            lead_id = data.get("lead_id") or data.get("lead", {}).get("lead_id") or data.get("lead", {}).get("id")
            found.append(lead_id)
        return found


@dataclass
class Pipeline:
    infra: Any
    topic_prefix: str
    receiver: WebhookReceiver
    urls: dict[str, str]
    client: httpx.AsyncClient

    async def submit(self, **fields: str) -> str:
        response = await self.client.post(f"{self.urls['capture']}/v1/forms/demo/submissions", json=fields)
        assert response.status_code == 202, response.text
        lead_id: str = response.json()["lead_id"]
        return lead_id

    async def timeline(self, lead_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"{self.urls['sla']}/v1/leads/{lead_id}/timeline", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        return response.json() if response.status_code == 200 else {"stages": []}

    async def stages(self, lead_id: str) -> list[str]:
        return [stage["stage"] for stage in (await self.timeline(lead_id)).get("stages", [])]

    async def assignment(self, lead_id: str) -> dict[str, Any] | None:
        response = await self.client.get(
            f"{self.urls['routing']}/v1/leads/{lead_id}/assignment", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        return response.json() if response.status_code == 200 else None


async def eventually(check: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    # Across processes each stage takes longer than in-process, so the wait is longer and the poll slower.
    return await testing.eventually(check, timeout, interval)


