"""What capture keeps in process next to the kit's app state: limits, metrics, known forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter

from leadflow_capture import domain, web
from leadflow_capture.ratelimit import SubmissionLimiter, TokenBuckets
from leadflow_capture.settings import Settings
from leadflow_kit.errors import FieldError

OUTCOMES = ("accepted", "invalid", "spam", "rate_limited", "duplicate")
UNKNOWN_FORM_LABEL = "unknown"


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submissions = Counter(
            "leadflow_submissions_total", "Form submissions by form and outcome", ["form", "outcome"],
            registry=registry,
        )
        self.leads_captured = Counter(
            "leadflow_leads_captured_total", "Leads stored (and queued for lead.captured) by form", ["form"],
            registry=registry,
        )
        self.activities = Counter(
            "leadflow_activities_total", "Behavioral events accepted, by type family", ["kind"], registry=registry,
        )


@dataclass
class CaptureRuntime:
    settings: Settings
    metrics: CaptureMetrics
    limiter: SubmissionLimiter
    activity_limiter: SubmissionLimiter
    activity_lead_limiter: TokenBuckets
    page_load_limiter: SubmissionLimiter
    trusted_proxies: tuple[web.Network, ...]
    # key -> allowed origins of forms seen to exist; lets a rate-limited answer carry CORS headers
    # without a database read, and keeps metric labels to real form keys.
    known_forms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # key -> definition of active forms as last read; a submission checks it against the stored form
    # in its own transaction, so it saves a read, never serves a stale definition.
    form_definitions: dict[str, domain.FormDefinition] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry) -> CaptureRuntime:
        return cls(
            settings=settings,
            metrics=CaptureMetrics(registry),
            limiter=SubmissionLimiter(
                ip_per_minute=settings.rate_limit_ip_per_minute,
                ip_burst=settings.rate_limit_ip_burst,
                form_per_minute=settings.rate_limit_form_per_minute,
                form_burst=settings.rate_limit_form_burst,
                exempt_ips=frozenset(settings.rate_limit_exempt_ips),
            ),
            activity_limiter=SubmissionLimiter(
                ip_per_minute=settings.rate_limit_activity_ip_per_minute,
                ip_burst=settings.rate_limit_activity_ip_burst,
                form_per_minute=0,
                form_burst=1,
                exempt_ips=frozenset(settings.rate_limit_exempt_ips),
            ),
            activity_lead_limiter=TokenBuckets(settings.rate_limit_activity_lead_per_minute,
                                               settings.rate_limit_activity_lead_burst),
            page_load_limiter=SubmissionLimiter(
                ip_per_minute=settings.rate_limit_page_load_ip_per_minute,
                ip_burst=settings.rate_limit_page_load_ip_burst,
                form_per_minute=0,
                form_burst=1,
                exempt_ips=frozenset(settings.rate_limit_exempt_ips),
            ),
            trusted_proxies=web.parse_networks(settings.trusted_proxies),
        )

    @property
    def limits(self) -> domain.Limits:
        s = self.settings
        return domain.Limits(s.max_fields, s.max_field_name_length, s.max_field_length, s.max_message_length)

    @property
    def double_submit_window(self) -> timedelta:
        return timedelta(seconds=self.settings.double_submit_window_seconds)

    def remember(self, form: domain.FormDefinition) -> None:
        self.known_forms[form.key] = form.allowed_origins
        if form.archived:
            self.form_definitions.pop(form.key, None)
        else:
            self.form_definitions[form.key] = form

    def remembered_form(self, form_key: str) -> domain.FormDefinition | None:
        return self.form_definitions.get(form_key)

    def forget(self, form_key: str) -> None:
        self.form_definitions.pop(form_key, None)

    def form_label(self, form_key: str) -> str:
        return form_key if form_key in self.known_forms else UNKNOWN_FORM_LABEL

    def count(self, form_key: str, outcome: str) -> None:
        self.metrics.submissions.labels(self.form_label(form_key), outcome).inc()

    def client_ip(self, request: Request) -> str | None:
        return web.client_address(request.client.host if request.client else None,
                                  request.headers.getlist("x-forwarded-for"), self.trusted_proxies)


def page_load_throttled(request: Request) -> Response | None:
    """A 429 for an address over its page-load budget (embed.js, CORS preflights), else None."""
    runtime = runtime_of(request)
    retry_after = runtime.page_load_limiter.check(runtime.client_ip(request), None)
    if not retry_after:
        return None
    return web.json_error(429, f"too many requests; retry after {retry_after} seconds",
                          [FieldError(field="body", code="rate_limited", message="rate limit reached")],
                          headers={"Retry-After": str(retry_after)})


def runtime_of(request: Request) -> CaptureRuntime:
    runtime: CaptureRuntime = request.app.state.capture
    return runtime
