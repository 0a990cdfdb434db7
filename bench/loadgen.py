"""Realistic form fills and behavioral events, posted to capture on an open-loop schedule."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from bench import rawhttp
from bench.analysis import Submission

COMPANIES: tuple[tuple[str, str, str, str], ...] = (
    # name, domain, industry, employees
    ("Acme Robotics GmbH", "acme-robotics.example", "Manufacturing", "850"),
    ("Northwind Traders", "northwind.example", "Retail", "2300"),
    ("Globex Corporation", "globex.example", "Energy", "12000"),
    ("Initech", "initech.example", "Software", "420"),
    ("Umbrella Health", "umbrella-health.example", "Healthcare", "5600"),
    ("Stark Analytics", "stark-analytics.example", "Software", "180"),
    ("Wayne Logistics", "wayne-logistics.example", "Logistics", "3100"),
    ("Tyrell Biotech", "tyrell.example", "Biotechnology", "950"),
    ("Soylent Foods SA", "soylent.example", "Food & Beverage", "7400"),
    ("Hooli", "hooli.example", "Internet", "25000"),
    ("Pied Piper", "piedpiper.example", "Software", "35"),
    ("Cyberdyne Systems", "cyberdyne.example", "Aerospace", "1600"),
    ("Vandelay Industries", "vandelay.example", "Import/Export", "60"),
    ("Massive Dynamic", "massive-dynamic.example", "Research", "8800"),
    ("Oceanic Airlines", "oceanic.example", "Airlines", "14000"),
    ("Blue Sun Corp", "bluesun.example", "Consumer Goods", "4200"),
    ("Wonka Industries", "wonka.example", "Food & Beverage", "1200"),
    ("Gringotts Finance", "gringotts.example", "Financial Services", "2700"),
    ("Aperture Science", "aperture.example", "Research", "640"),
    ("Black Mesa Labs", "blackmesa.example", "Research", "3900"),
    ("Dunder Mifflin Paper", "dundermifflin.example", "Paper & Forest Products", "310"),
    ("Sirius Cybernetics", "sirius-cyber.example", "Electronics", "15000"),
    ("Nakatomi Trading", "nakatomi.example", "Real Estate", "2100"),
    ("Prestige Worldwide", "prestige.example", "Entertainment", "12"),
    ("Zorg Industries", "zorg.example", "Defense", "9100"),
    ("Kramerica", "kramerica.example", "Consulting", "8"),
    ("Fjord Fintech AS", "fjord-fintech.example", "Financial Services", "95"),
    ("Sakura Mobility KK", "sakura-mobility.example", "Automotive", "6500"),
    ("Lumen Edu", "lumen-edu.example", "Education", "240"),
    ("Maple Leaf Insurance", "mapleleaf-ins.example", "Insurance", "3300"),
)
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "web.de", "proton.me")
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "NL", "CA", "AU", "JP", "BR", "IN", "ES", "SE", "Germany",
             "United Kingdom", "usa", "Deutschland", "IE", "SG")
TITLES = (
    "Chief Executive Officer", "CEO", "CTO", "VP Sales", "VP of Marketing", "Head of Revenue Operations",
    "Director of IT", "Marketing Manager", "Sales Development Representative", "Senior Software Engineer",
    "Product Manager", "Procurement Lead", "Founder", "Intern", "Student", "Consultant", "CFO",
    "Director, Demand Generation", "Operations Analyst", "Account Executive",
)
FIRST = ("Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Radia",
         "Tim", "Frances", "Ken", "Hedy", "John", "Sophie", "Yukihiro", "Anita", "Guido", "Shafi", "Jean",
         "María", "Björn", "Zoë", "Chidi", "Priya", "Mei", "Olu", "Lars", "Fatima")
LAST = ("Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Torvalds",
        "Perlman", "Berners-Lee", "Allen", "Thompson", "Lamarr", "McCarthy", "Wilson", "Matsumoto", "Borg",
        "van Rossum", "Goldwasser", "Sammet", "García", "Öberg", "O'Neill", "Okafor", "Patel", "Chen",
        "Adeyemi", "Nilsson", "Haddad")
CAMPAIGNS = ("spring-launch", "webinar-q4", "retargeting", "brand", "competitor-x", "")
SOURCES = ("google", "linkedin", "newsletter", "partner", "direct", "")
ACTIVITY_TYPES = ("page_view", "page_view", "page_view", "content_download", "pricing_page_view",
                  "webinar_registered", "email_click")


@dataclass
class FormFillFactory:
    run_id: str
    seed: int = 7
    duplicate_share: float = 0.08
    rng: random.Random = field(init=False)
    emails: list[str] = field(default_factory=list)
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> tuple[str, dict[str, str]]:
        """('lead' | 'duplicate', the posted fields)."""
        rng = self.rng
        if self.emails and rng.random() < self.duplicate_share:
            # The same person submitting again (another form visit, a changed title).
            email = rng.choice(self.emails[-500:])
            return "duplicate", {"email": email, "job_title": rng.choice(TITLES), "message": "Following up."}
        self._n += 1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company, domain, industry, employees = rng.choice(COMPANIES)
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        if rng.random() < 0.15:
            domain = rng.choice(FREE_MAIL)
        email = f"{local}.{self.run_id}{self._n}@{domain}"
        self.emails.append(email)
        fill = {
            "email": email,
            "first_name": first,
            "last_name": last,
            "company": company,
            "job_title": rng.choice(TITLES),
            "country": rng.choice(COUNTRIES),
        }
        if rng.random() < 0.7:
            fill["industry"] = industry
            fill["employee_count"] = employees
        if rng.random() < 0.5:
            fill["phone"] = f"+1 415 555 {rng.randrange(10000):04d}"
        campaign, source = rng.choice(CAMPAIGNS), rng.choice(SOURCES)
        if campaign:
            fill["utm_campaign"] = campaign
            fill["utm_source"] = source or "google"
            fill["utm_medium"] = rng.choice(("cpc", "email", "social"))
        if rng.random() < 0.3:
            fill["message"] = "We are evaluating lead routing tools for our sales team this quarter."
        return "lead", fill

    def activity(self) -> dict[str, object]:
        rng = self.rng
        activity: dict[str, object] = {"type": rng.choice(ACTIVITY_TYPES),
                                       "page_url": f"https://www.example.com/{rng.choice(('pricing', 'docs', 'blog'))}"}
        if self.emails and rng.random() < 0.8:
            activity["email"] = rng.choice(self.emails[-1000:])
        else:
            activity["visitor_id"] = f"v-{self.run_id}-{rng.randrange(10**6)}"
        return activity


class CaptureLoad:
    """Posts to capture and records every answer as a ``Submission``."""

    def __init__(self, capture_url: str, form_key: str, factory: FormFillFactory, activity_share: float,
                 api_key: str) -> None:
        hostport = capture_url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        self.client = rawhttp.HttpClient(host, int(port))
        self.path = f"/v1/forms/{form_key}/submissions"
        self.factory = factory
        self.activity_share = activity_share
        # Activities by email are server to server (the marketing-automation tool's key).
        self.activity_headers = {"Authorization": f"Bearer {api_key}"}
        self.submissions: list[Submission] = []
        self._activity_credit = 0.0

    async def _post(self, kind: str, path: str, payload: object, due: float) -> None:
        body = json.dumps(payload).encode()
        lead_id: str | None = None
        error: str | None = None
        status = 0
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if kind == "activity":
            headers.update(self.activity_headers)
        sent = time.time()  # a request that fails before it is written keeps this time
        try:
            response = await self.client.request("POST", path, body, headers)
            sent = response.sent
            status = response.status
            if kind != "activity" and 200 <= status < 300:
                lead_id = json.loads(response.body).get("lead_id")
            elif not 200 <= status < 300:
                error = response.body[:200].decode(errors="replace")
        except Exception as exc:  # a refused or reset connection is a measured error, not a crash
            error = type(exc).__name__
        self.submissions.append(Submission(lead_id, due, time.time(), status, kind, error, sent))

    async def fire(self, _i: int, due: float) -> None:
        kind, fill = self.factory.next()
        self._activity_credit += self.activity_share
        if self._activity_credit >= 1.0:
            self._activity_credit -= 1.0
            await asyncio.gather(
                self._post("activity", "/v1/activities", self.factory.activity(), due),
                self._post(kind, self.path, fill, due),
            )
        else:
            await self._post(kind, self.path, fill, due)

    def take(self) -> list[Submission]:
        taken, self.submissions = self.submissions, []
        return taken

    async def close(self) -> None:
        await self.client.close()
