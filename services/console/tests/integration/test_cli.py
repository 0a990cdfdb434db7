"""``leadflow-console users create`` against the real PostgreSQL: the user it makes signs in."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from .conftest import ConsoleHarness

pytestmark = pytest.mark.integration


def run_cli(harness: ConsoleHarness, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONSOLE_DATABASE_URL": harness.settings.database_url, "CONSOLE_ENVIRONMENT": "test",
           "CONSOLE_SECRET_KEY": harness.settings.signing_key()}
    return subprocess.run([sys.executable, "-m", "leadflow_console", "users", "create", *args, "--password-stdin"],
                          input=f"{password}\n", capture_output=True, text=True, env=env, timeout=60)


async def test_users_create_makes_a_user_who_signs_in_and_refuses_a_second_one(harness: ConsoleHarness,
                                                                               client: httpx.AsyncClient):
    name = f"mia-{uuid.uuid4().hex[:6]}"
    done = await asyncio.to_thread(run_cli, harness, "--username", name, "--role", "sales_manager",
                                   "--team-id", "emea", "--team-id", "dach", password="managers manage well")
    assert done.returncode == 0, done.stderr
    assert f"created sales_manager user '{name}'" in done.stdout
    assert (await harness.sign_in(client, name, "managers manage well")).status_code == 303
    home = await client.get("/home")
    assert "Sales manager" in home.text

    again = await asyncio.to_thread(run_cli, harness, "--username", name, "--role", "admin",
                                    password="another long password")
    assert again.returncode == 1 and "there is already a user" in again.stderr
    short = await asyncio.to_thread(run_cli, harness, "--username", f"x{name}", "--role", "admin", password="short")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    no_rep = await asyncio.to_thread(run_cli, harness, "--username", f"y{name}", "--role", "rep",
                                     password="a long enough password")
    assert no_rep.returncode == 2 and "needs --rep-id" in no_rep.stderr
