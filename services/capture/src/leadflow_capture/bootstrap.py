"""Everything capture has before its app exists: the platform, its metrics, store, rate limits and the
forms it has served. Routes reach it through ``DepsDep``; handlers through ``uow.deps``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from leadflow_capture import domain, web
from leadflow_capture.form_cache import KnownForms
from leadflow_capture.group_commit import GroupCommit
from leadflow_capture.metrics import CaptureMetrics
from leadflow_capture.ratelimit import Limiters, SubmissionLimiter, TokenBuckets
from leadflow_capture.settings import Settings
from leadflow_capture.store import CaptureStore
from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency
from leadflow_kit.uow import unit_of_work


@dataclass
class Deps:
    platform: Platform
    settings: Settings
    metrics: CaptureMetrics
    store: CaptureStore
    limiters: Limiters
    trusted_proxies: tuple[web.Network, ...]
    # The size limits of a fill's fields, and the window in which a repeated fill is the same lead.
    limits: domain.Limits
    double_submit_window: timedelta
    # Keys the opaque id of a person known only by email (domain.person_key).
    person_secret: bytes
    forms: KnownForms = field(default_factory=KnownForms)
    # The form fills' and the activity posts' shared transactions (group_commit.py).
    fills: GroupCommit[Deps] = field(init=False)
    activity_posts: GroupCommit[Deps] = field(init=False)

    def __post_init__(self) -> None:
        def grouped(observe: Callable[[int], None]) -> GroupCommit[Deps]:
            return GroupCommit(lambda: unit_of_work(self.platform, self, self.platform.pipeline_db),
                               self.settings.submission_group_window_ms / 1000, self.settings.submission_group_max,
                               observe, behind_commit=self.settings.submission_group_behind_commit)

        self.fills = grouped(self.metrics.group_size.observe)
        self.activity_posts = grouped(self.metrics.activity_group_size.observe)

    def client_ip(self, request: Request) -> str | None:
        """The address rate limits count for this request (see ``web.client_address``)."""
        return web.client_address(request.client.host if request.client else None,
                                  request.headers.getlist("x-forwarded-for"), self.trusted_proxies)

    def count(self, form_key: str, outcome: str) -> None:
        """Count a submission to ``form_key`` by outcome (accepted, invalid, spam, rate_limited, duplicate)."""
        self.metrics.submissions.labels(self.forms.label(form_key), outcome).inc()


def bootstrap(settings: Settings, clock: Clock | None = None) -> Deps:
    platform = Platform.build(settings, clock)
    return Deps(
        platform=platform,
        settings=settings,
        metrics=CaptureMetrics(platform.metrics.registry),
        store=CaptureStore(),
        limiters=limiters(settings),
        trusted_proxies=web.parse_networks(settings.trusted_proxies),
        limits=domain.Limits(settings.max_fields, settings.max_field_name_length, settings.max_field_length,
                             settings.max_message_length),
        double_submit_window=timedelta(seconds=settings.double_submit_window_seconds),
        person_secret=settings.person_key_secret.get_secret_value().encode(),
    )


def limiters(settings: Settings) -> Limiters:
    exempt = frozenset(settings.rate_limit_exempt_ips)
    return Limiters(
        submissions=SubmissionLimiter(
            ip_per_minute=settings.rate_limit_ip_per_minute, ip_burst=settings.rate_limit_ip_burst,
            form_per_minute=settings.rate_limit_form_per_minute, form_burst=settings.rate_limit_form_burst,
            exempt_ips=exempt,
        ),
        activities=SubmissionLimiter(
            ip_per_minute=settings.rate_limit_activity_ip_per_minute, ip_burst=settings.rate_limit_activity_ip_burst,
            form_per_minute=0, form_burst=1, exempt_ips=exempt,
        ),
        activity_subjects=TokenBuckets(settings.rate_limit_activity_lead_per_minute,
                                       settings.rate_limit_activity_lead_burst),
        page_loads=SubmissionLimiter(
            ip_per_minute=settings.rate_limit_page_load_ip_per_minute,
            ip_burst=settings.rate_limit_page_load_ip_burst,
            form_per_minute=0, form_burst=1, exempt_ips=exempt,
        ),
    )


DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
