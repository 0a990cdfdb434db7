"""The activity vocabulary: every behavioural event type LeadFlow knows, defined once.

Capture accepts these (and ``custom.<name>`` types) on ``POST /v1/activities``; a scoring model may
reward only these and ``custom.<name>`` types, so a type a model names is one capture can record.
"""

from __future__ import annotations

import re
from typing import Final

ACTIVITY_TYPES: Final[dict[str, str]] = {
    "page_view": "a page of the website was viewed (page_url says which)",
    "pricing_page_view": "the pricing page was viewed",
    "careers_page_view": "a careers page was viewed (a job seeker rather than a buyer)",
    "content_download": "a whitepaper, e-book or other gated content was downloaded",
    "webinar_registered": "registered for a webinar",
    "webinar_attended": "attended a webinar",
    "email_click": "clicked a link in a marketing email",
    "demo_requested": "asked for a demo outside a LeadFlow form (e.g. a chat or a scheduling tool)",
    "contact_requested": "asked sales to get in touch",
    "trial_started": "started a free trial",
    "form_submission": "filled in a LeadFlow form; recorded by scoring for every fill, not posted as an activity",
}

# Types that only LeadFlow itself records; capture refuses them from outside.
INTERNAL_ACTIVITY_TYPES: Final[frozenset[str]] = frozenset({"form_submission"})

CUSTOM_PREFIX: Final[str] = "custom."
# A custom type is the caller's own name under ``custom.``: lowercase, at most 64 characters in all.
CUSTOM_TYPE_PATTERN: Final[re.Pattern[str]] = re.compile(r"custom\.[a-z0-9][a-z0-9_.:-]{0,56}")


def is_known_activity_type(name: str) -> bool:
    """One of the vocabulary's types, or a ``custom.<name>`` type."""
    return name in ACTIVITY_TYPES or CUSTOM_TYPE_PATTERN.fullmatch(name) is not None


def unknown_activity_type_message(name: str) -> str:
    known = ", ".join(t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES)
    return f"'{name[:80]}' is not an activity type; use one of {known}, or custom.<name>"
