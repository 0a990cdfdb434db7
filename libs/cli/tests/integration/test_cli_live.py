"""The CLI against the five services running as processes on the suite's real Kafka and PostgreSQL
(demo seed: forms, a scoring model, team `sales` with three reps, a catch-all rule)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from leadflow_cli.main import main

pytestmark = pytest.mark.integration

SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    env: dict[str, str]

    async def __call__(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        # The CLI is synchronous; run it off the event loop the session's fixtures live on.
        code = await asyncio.to_thread(main, list(argv), env=self.env, stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli(infra: Any) -> AsyncIterator[Cli]:
    prefix = infra.new_topic_prefix("cli")
    await infra.create_topics(prefix, partitions=1)
    started: list[str] = []

    async def start(name: str) -> tuple[str, str]:
        config = await infra.start_service(name, topic_prefix=prefix, seed_demo=True, timeout=120)
        started.append(name)
        return name, config.url

    try:
        urls = dict(await asyncio.gather(*(start(name) for name in SERVICES)))
        # The services run with the development admin key, which the CLI sends when none is set.
        yield Cli({f"LEADFLOW_{name.upper()}_URL": url for name, url in urls.items()})
    finally:
        for name in reversed(started):
            await infra.stop_service(name)


async def test_every_service_is_ready(cli: Cli) -> None:
    result = await cli("status", "--json")
    assert result.code == 0, result.out
    assert {r["service"]: r["state"] for r in result.json} == dict.fromkeys(SERVICES, "ready")


async def test_a_form_is_applied_idempotently_archived_and_restored(cli: Cli, tmp_path: Path) -> None:
    form = {"key": "cli-webinar", "name": "Webinar sign-up", "required_fields": ["email", "company"],
            "allowed_origins": ["https://www.example.com"]}
    path = tmp_path / "form.json"
    path.write_text(json.dumps(form))
    assert [r["action"] for r in (await cli("forms", "apply", "-f", str(path), "--json")).json] == ["created"]
    assert [r["action"] for r in (await cli("forms", "apply", "-f", str(path), "--json")).json] == ["unchanged"]
    listed = await cli("forms", "list")
    assert "cli-webinar  Webinar sign-up  active  email, company" in listed.out
    assert (await cli("forms", "archive", "cli-webinar")).code == 0
    assert (await cli("forms", "get", "cli-webinar", "--json")).json["status"] == "archived"
    assert (await cli("forms", "restore", "cli-webinar", "--json")).json["status"] == "active"


async def test_reps_teams_territories_and_a_routing_dry_run(cli: Cli) -> None:
    created = await cli("teams", "create", "--id", "cli-emea", "--name", "EMEA", "--strategy", "weighted", "--json")
    assert created.code == 0, created.err
    rep = await cli("reps", "create", "--id", "cli-rep", "--name", "Rosa", "--team", "cli-emea",
                    "--territories", "DE,FR", "--timezone", "Europe/Berlin", "--json")
    assert rep.code == 0, rep.err
    assert rep.json["territories"] == ["DE", "FR"]
    territories = (await cli("territories", "list", "--json")).json
    assert {"territory": "DE", "reps": ["cli-rep"], "active_reps": ["cli-rep"]} in territories
    assert (await cli("teams", "get", "cli-emea", "--json")).json["rep_ids"] == ["cli-rep"]

    routed = await cli("routing-rules", "dry-run", "--lead-id", "nobody")
    assert routed.code == 1
    assert "routing answered 404 Not Found" in routed.err and "no lead 'nobody'" in routed.err
    active = await cli("routing-rules", "get")
    assert "everyone-to-sales" in active.out and "team sales" in active.out

    assert (await cli("reps", "deactivate", "cli-rep")).code == 0
    assert (await cli("reps", "get", "cli-rep", "--json")).json["active"] is False

    # A team goes once nobody is in it; the refusal says who still is.
    kept = await cli("teams", "delete", "cli-emea")
    assert kept.code == 1 and "routing answered 409" in kept.err and "still has reps (cli-rep)" in kept.err
    assert (await cli("reps", "update", "cli-rep", "--team", "sales")).code == 0
    assert (await cli("teams", "delete", "cli-emea", "--json")).json == {"id": "cli-emea", "deleted": True}
    assert (await cli("queues", "create", "--id", "cli-q", "--name", "CLI")).code == 0
    renamed = await cli("queues", "update", "cli-q", "--description", "made by the CLI test", "--json")
    assert renamed.json["description"] == "made by the CLI test" and renamed.json["name"] == "CLI"
    assert (await cli("queues", "delete", "cli-q")).code == 0
    assert "cli-q" not in {q["id"] for q in (await cli("queues", "list", "--json")).json}


async def test_the_api_refusal_names_the_field(cli: Cli) -> None:
    result = await cli("sla-policies", "create", "--tier", "hot", "--target-seconds", "0")
    assert result.code == 1
    assert "sla answered 422" in result.err
    assert "  target_seconds: " in result.err


async def test_the_active_scoring_model_validates_from_its_own_source(cli: Cli, tmp_path: Path) -> None:
    source = await cli("scoring-models", "source")
    assert source.code == 0, source.err
    path = tmp_path / "model.yaml"
    path.write_text(source.out)
    validated = await cli("scoring-models", "validate", "-f", str(path))
    assert validated.code == 0, validated.out
    assert validated.out.startswith("valid: ")


async def test_a_scoped_key_can_read_but_not_write(cli: Cli, tmp_path: Path) -> None:
    created = await cli("api-keys", "create", "--service", "capture", "--name", "cli-reader", "--scope", "forms:read",
                        "--json")
    assert created.code == 0, created.err
    key = created.json["key"]
    assert (await cli("forms", "list", "--api-key", key)).code == 0
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"key": "nope", "name": "Nope"}))
    refused = await cli("forms", "create", "-f", str(path), "--api-key", key)
    assert refused.code == 1
    assert "403 Forbidden" in refused.err and "forms:write" in refused.err
    assert (await cli("api-keys", "revoke", "--service", "capture", created.json["id"])).code == 0
    assert "401 Unauthorized" in (await cli("forms", "list", "--api-key", key)).err


async def test_webhook_subscription_lifecycle(cli: Cli) -> None:
    created = await cli("webhooks", "create", "--service", "sla", "--url", "https://crm.example.com/sla",
                        "--event-type", "lead.sla_breached", "--json")
    assert created.code == 0, created.err
    sub = created.json["id"]
    assert created.json["secret"]
    rotated = await cli("webhooks", "rotate-secret", sub, "--service", "sla", "--overlap-seconds", "60", "--json")
    assert rotated.json["secret"] != created.json["secret"]
    assert sub in (await cli("webhooks", "list", "--service", "sla")).out
    assert (await cli("webhooks", "deliveries", "--service", "sla", "--json")).json == []
    assert (await cli("webhooks", "delete", sub, "--service", "sla")).code == 0


async def test_spend_is_recorded_imported_listed_and_removed(cli: Cli, tmp_path: Path) -> None:
    added = await cli("spend", "add", "--campaign", "cli-brand", "--source", "google", "--from", "2026-10-01",
                      "--to", "2026-10-31", "--amount", "3100.50", "--currency", "EUR", "--json")
    assert added.code == 0, added.err
    header = "utm_campaign,source,period_from,period_to,amount,currency\n"
    good = tmp_path / "spend.csv"
    good.write_text(header + "cli-brand,linkedin,2026-11-01,2026-11-30,3000,USD\n")
    assert (await cli("spend", "import", str(good), "--json")).json == {"imported": 1}
    listed = await cli("spend", "list", "--campaign", "cli-brand", "--json")
    assert sorted((s["source"], Decimal(s["amount"]), s["currency"]) for s in listed.json) == [
        ("google", Decimal("3100.50"), "EUR"), ("linkedin", Decimal("3000"), "USD")]
    november = await cli("spend", "list", "--campaign", "cli-brand", "--from", "2026-11-01")
    assert november.out.splitlines()[0].split()[:3] == ["ID", "CAMPAIGN", "SOURCE"]
    assert "linkedin" in november.out and "google" not in november.out
    # All or nothing: a row at fault names its line and field, and nothing is stored.
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "cli-brand,bing,2026-12-01,2026-12-31,10,USD\n"
                            "cli-brand,bing,2026-12-01,2026-12-31,10,usd\n")
    refused = await cli("spend", "import", str(bad))
    assert refused.code == 1 and "line 3: currency" in refused.err
    assert (await cli("spend", "delete", added.json["id"])).code == 0
    left = (await cli("spend", "list", "--campaign", "cli-brand", "--json")).json
    assert [s["source"] for s in left] == ["linkedin"]


async def test_currency_rates_are_set_for_every_day_or_from_a_day_on(cli: Cli) -> None:
    always = await cli("currency-rates", "set", "EUR=1.10", "--json")
    assert always.code == 0, always.err
    assert always.json["tables"] == [{"effective_from": None, "rates": {"EUR": "1.1"}}]
    dated = await cli("currency-rates", "set", "EUR=1.2", "gbp=1.3", "--from", "2027-01-01")
    assert dated.code == 0, dated.err
    assert "EUR=1.2 GBP=1.3" in dated.out and "2027-01-01" in dated.out and "(every day)" in dated.out
    before = (await cli("currency-rates", "get", "--on", "2026-12-31", "--json")).json
    assert (before["effective_from"], before["rates"]) == (None, {"EUR": "1.1"})
    assert (await cli("currency-rates", "set", "EUR1.2")).code == 2
    assert "rates.USD" in (await cli("currency-rates", "set", "USD=1")).err
    assert (await cli("currency-rates", "delete", "2027-01-01")).code == 0
    assert (await cli("currency-rates", "delete", "2027-01-01")).code == 1
    assert (await cli("currency-rates", "get", "--json")).json["tables"] == always.json["tables"]


async def test_export_then_import_is_a_no_op_and_an_edit_is_applied(cli: Cli, tmp_path: Path) -> None:
    exported = await cli("export")
    assert exported.code == 0, exported.err
    config = json.loads(exported.out)
    assert {"sales"} <= {t["id"] for t in config["teams"]}
    assert config["scoring_model"]["spec"] and config["routing_rules"]["rules"]
    assert config["currency_rates"]["reporting_currency"] and "tables" in config["currency_rates"]
    path = tmp_path / "config.json"
    path.write_text(exported.out)
    again = await cli("import", str(path), "--json")
    assert again.code == 0, again.err
    assert {r["action"] for r in again.json} == {"unchanged"}

    config["sla_policies"].append({"tier": "warm", "team_id": "sales", "name": "Sales warm",
                                   "target_seconds": 1800})
    config["reps"] = [{**r, "weight": 3} if r["id"] == "rep-ada" else r for r in config["reps"]]
    path.write_text(json.dumps(config))
    planned = await cli("import", str(path), "--dry-run", "--json")
    assert {(r["resource"], r["action"]) for r in planned.json if r["action"] != "unchanged"} == {
        ("sla policy", "would create"), ("rep", "would update")}
    applied = await cli("import", str(path))
    assert applied.code == 0, applied.err
    after = json.loads((await cli("export")).out)
    assert next(r for r in after["reps"] if r["id"] == "rep-ada")["weight"] == 3
    assert any(p["tier"] == "warm" and p["team_id"] == "sales" for p in after["sla_policies"])


async def test_the_console_script_runs_as_a_process(cli: Cli) -> None:
    script = Path(sys.executable).with_name("leadflow")
    completed = await asyncio.to_thread(
        subprocess.run, [str(script), "teams", "list"], capture_output=True, text=True, timeout=60,
        env={**os.environ, **cli.env, "LEADFLOW_API_KEY": ""},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "STRATEGY"]
    assert "sales" in completed.stdout
