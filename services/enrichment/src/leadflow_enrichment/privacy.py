"""Where enrichment keeps personal data: the person's lead and every fill of it."""

from __future__ import annotations

from leadflow_contracts import topics
from leadflow_kit.privacy import PersonalData, PersonalRows

PERSONAL_DATA = PersonalData(
    "enrichment",
    rows=(
        PersonalRows("lead_fill", "lead_id = ANY(:lead_ids) OR captured_lead_id = ANY(:lead_ids)"),
        PersonalRows("lead", "id = ANY(:lead_ids) OR email = :email"),
    ),
    lead_ids="SELECT id FROM lead WHERE email = :email UNION SELECT f.captured_lead_id FROM lead_fill AS f "
             "JOIN lead AS l ON l.id = f.lead_id WHERE l.email = :email",
    keyed_topics=(topics.ENRICHED,),
)
