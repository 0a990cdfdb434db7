"""Where routing keeps personal data: the lead, its assignments and touches, its CRM webhooks."""

from __future__ import annotations

from leadflow_contracts import topics
from leadflow_kit.privacy import WEBHOOK_ROWS, PersonalData, PersonalRows

PERSONAL_DATA = PersonalData(
    "routing",
    rows=(
        PersonalRows("touch", "lead_id = ANY(:lead_ids)"),
        PersonalRows("rep_notification", "lead_id = ANY(:lead_ids)"),
        PersonalRows("assignment", "lead_id = ANY(:lead_ids)"),
        PersonalRows("lead_sla", "lead_id = ANY(:lead_ids)"),
        PersonalRows("parked_lead", "lead_id = ANY(:lead_ids)"),
        PersonalRows("lead", "id = ANY(:lead_ids)"),
        *WEBHOOK_ROWS,
    ),
    keyed_topics=(topics.ROUTED, topics.TOUCHED, topics.DELIVERED),
)
