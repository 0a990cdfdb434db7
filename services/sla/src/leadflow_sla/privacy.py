"""Where sla keeps data about a person: the lead's timeline, funnel row (with the email, name and company a
search finds it by), clocks and notifications."""

from __future__ import annotations

from leadflow_contracts import topics
from leadflow_kit.privacy import WEBHOOK_ROWS, PersonalData, PersonalRows

PERSONAL_DATA = PersonalData(
    "sla",
    rows=(
        PersonalRows("lead_event", "lead_id = ANY(:lead_ids)"),
        PersonalRows("sla_notice", "lead_id = ANY(:lead_ids)"),
        PersonalRows("sla_clock", "lead_id = ANY(:lead_ids)"),
        PersonalRows("lead", "lead_id = ANY(:lead_ids) OR merged_into = ANY(:lead_ids)"),
        *WEBHOOK_ROWS,
    ),
    # The funnel row keeps the lead's email: an erasure by email alone finds the person's leads by it.
    lead_ids="SELECT lead_id FROM lead WHERE email = :email",
    keyed_topics=(topics.SLA, topics.DELIVERED),
)
