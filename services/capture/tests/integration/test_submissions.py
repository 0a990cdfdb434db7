"""Form fills in every encoding, through the real database and broker to lead.captured."""

from __future__ import annotations

import pytest

from leadflow_contracts import LeadCaptured

pytestmark = pytest.mark.integration


async def test_json_post_is_accepted_and_published_with_attribution_and_consent(capture):
    form = await capture.create_form(
        field_mapping={"work_email": "email", "org": "company", "how_heard": "heard_from"},
        consent_required=True, consent_text="You may contact me.", consent_version="v3",
    )
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={
        "work_email": "Ada@Example.com", "org": "Engines Ltd", "how_heard": "podcast", "consent": True,
        "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "q4", "utm_term": "leads",
        "utm_content": "hero", "gclid": "g-1", "fbclid": "f-1", "msclkid": "m-1",
        "referrer": "https://news.example.org/", "landing_page": "https://www.example.com/demo?x=1",
        "page_title": "Book a demo", "visitor_id": "v-42",
    })
    assert response.status_code == 202, response.text
    lead_id = response.json()["lead_id"]

    event = await capture.captured(lead_id)
    data = event.data
    assert isinstance(data, LeadCaptured)
    assert event.type == "lead.captured.v1"
    assert data.form_key == form["key"]
    assert data.contact.email == "Ada@Example.com"
    assert data.contact.company == "Engines Ltd"
    assert data.custom_fields == {"heard_from": "podcast"}
    assert data.visitor_id == "v-42"
    attribution = data.attribution.model_dump(exclude_none=True)
    assert attribution == {
        "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "q4", "utm_term": "leads",
        "utm_content": "hero", "gclid": "g-1", "fbclid": "f-1", "msclkid": "m-1",
        "referrer": "https://news.example.org/", "landing_page": "https://www.example.com/demo?x=1",
        "page_title": "Book a demo",
    }
    assert data.consent is not None
    assert data.consent.given is True
    assert data.consent.text_version == "v3"
    assert data.consent.ip == "203.0.113.7"
    assert data.consent.given_at is not None


async def test_browser_urlencoded_post_redirects_to_success_url_with_lead_id(capture):
    form = await capture.create_form(success_url="https://www.example.com/thanks?src=form")
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions",
        content="email=grace%40example.com&first_name=Grace&utm_source=ads&interests=a&interests=b",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://www.example.com/thanks?src=form&lead_id=")
    lead_id = location.rsplit("=", 1)[1]
    data = (await capture.captured(lead_id)).data
    assert data.contact.first_name == "Grace"
    assert data.attribution.utm_source == "ads"
    assert data.custom_fields["interests"] == "a, b"


async def test_multipart_post_without_accept_is_a_browser_post(capture):
    form = await capture.create_form()
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions",
        files={"email": (None, "linus@example.com"), "company": (None, "Kernel Co")},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/v1/forms/{form['key']}/thanks?lead_id=")
    thanks = await capture.client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert "Thank you" in thanks.text


async def test_multipart_with_json_accept_gets_202(capture):
    form = await capture.create_form()
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions",
        files={"email": (None, "barbara@example.com")}, headers={"Accept": "application/json"},
    )
    assert response.status_code == 202
    data = (await capture.captured(response.json()["lead_id"])).data
    assert data.contact.email == "barbara@example.com"


async def test_plain_form_takes_landing_page_and_utm_from_referer(capture):
    form = await capture.create_form()
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions",
        content="email=katherine%40example.com",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html",
                 "Referer": "https://www.example.com/demo?utm_source=linkedin&utm_campaign=spring&gclid=abc"},
    )
    assert response.status_code == 303
    data = (await capture.captured(response.headers["location"].rsplit("=", 1)[1])).data
    assert data.attribution.landing_page == "https://www.example.com/demo?utm_source=linkedin&utm_campaign=spring&gclid=abc"
    assert data.attribution.utm_source == "linkedin"
    assert data.attribution.utm_campaign == "spring"
    assert data.attribution.gclid == "abc"


async def test_demo_form_is_seeded_and_takes_the_foundation_json_post(capture):
    response = await capture.client.post("/v1/forms/demo/submissions", json={"email": "demo@example.com"})
    assert response.status_code == 202
    assert set(response.json()) == {"lead_id"}
