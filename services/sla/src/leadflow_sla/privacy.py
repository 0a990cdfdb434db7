"""Where sla keeps data about a person: the lead's timeline, funnel row, clocks and notifications."""

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
    keyed_topics=(topics.SLA, topics.DELIVERED),
)
