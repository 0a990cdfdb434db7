"""Headers a client writes steer nothing: the Host header does not reach the embed script, only
trusted hosts are served, a client's own X-Forwarded-For entries do not escape a rate limit, and
CORS preflights and embed.js are throttled like the rest."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def embed_config(script: str) -> dict[str, str]:
    line = next(line for line in script.splitlines() if "var config =" in line)
    config: dict[str, str] = json.loads(line.split("=", 1)[1].strip().rstrip(";"))
    return config


async def test_a_forged_host_header_does_not_reach_the_embed_script(capture):
    form = await capture.create_form()
    response = await capture.client.get(f"/v1/forms/{form['key']}/embed.js", headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert "evil.example" not in response.text
    # A path the browser resolves against the script's own URL.
    assert embed_config(response.text)["endpoint"] == f"/v1/forms/{form['key']}/submissions"


async def test_the_configured_public_url_is_the_embed_scripts_endpoint(start_capture):
    async with start_capture(public_base_url="https://capture.example.com/") as capture:
        form = await capture.create_form()
        response = await capture.client.get(f"/v1/forms/{form['key']}/embed.js",
                                            headers={"Host": "evil.example"})
        assert embed_config(response.text)["endpoint"] == (
            f"https://capture.example.com/v1/forms/{form['key']}/submissions")


async def test_only_trusted_hosts_are_served(start_capture):
    async with start_capture(trusted_hosts=["capture.test", "*.example.com"]) as capture:
        assert (await capture.client.get("/healthz")).status_code == 200
        assert (await capture.client.get("/healthz", headers={"Host": "eu.example.com"})).status_code == 200
        form = await capture.create_form()
        refused = await capture.client.get(f"/v1/forms/{form['key']}/embed.js", headers={"Host": "evil.example"})
        assert refused.status_code == 400


async def test_a_client_chosen_forwarded_for_entry_does_not_escape_the_limit(start_capture):
    # The test client connects from 203.0.113.7: the proxy. It appends the address it saw.
    limits = {"rate_limit_ip_per_minute": 60, "rate_limit_ip_burst": 2, "trusted_proxies": ["203.0.113.0/24"]}
    async with start_capture(**limits) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        codes = [(await capture.client.post(url, json={"email": f"x{i}@example.com"},
                                            headers={"X-Forwarded-For": f"10.{i}.0.1, 198.51.100.9"})).status_code
                 for i in range(3)]
        assert codes == [202, 202, 429]
        # Another client behind the same proxy has its own budget.
        other = await capture.client.post(url, json={"email": "y@example.com"},
                                          headers={"X-Forwarded-For": "198.51.100.10"})
        assert other.status_code == 202


async def test_without_trusted_proxies_the_forwarded_header_is_ignored(start_capture):
    async with start_capture(rate_limit_ip_per_minute=60, rate_limit_ip_burst=2) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        codes = [(await capture.client.post(url, json={"email": f"z{i}@example.com"},
                                            headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
                 for i in range(3)]
        assert codes == [202, 202, 429]


async def test_preflights_and_the_embed_script_are_throttled(start_capture):
    async with start_capture(rate_limit_page_load_ip_per_minute=60, rate_limit_page_load_ip_burst=3) as capture:
        form = await capture.create_form()
        preflight = {"Origin": "https://www.example.com", "Access-Control-Request-Method": "POST"}
        answers = [
            await capture.client.options(f"/v1/forms/{form['key']}/submissions", headers=preflight),
            await capture.client.options("/v1/activities", headers=preflight),
            await capture.client.get(f"/v1/forms/{form['key']}/embed.js"),
            await capture.client.get(f"/v1/forms/{form['key']}/embed.js"),
            await capture.client.options("/v1/activities", headers=preflight),
        ]
        assert [a.status_code for a in answers] == [204, 204, 200, 429, 429]
        assert answers[-1].headers["retry-after"] == "1"
        assert answers[-1].json()["errors"][0]["code"] == "rate_limited"
        # Submissions keep their own budget.
        submitted = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "p@example.com"})
        assert submitted.status_code == 202
