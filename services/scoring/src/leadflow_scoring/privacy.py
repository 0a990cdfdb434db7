"""Where scoring keeps personal data: the person's score, its history, activities and identities."""

from __future__ import annotations

from leadflow_contracts import topics
from leadflow_kit.privacy import PersonalData, PersonalRows

PERSONAL_DATA = PersonalData(
    "scoring",
    rows=(
        PersonalRows("score_change", "lead_id = ANY(:lead_ids)"),
        PersonalRows("activity", "lead_id = ANY(:lead_ids) OR wanted_lead_id = ANY(:lead_ids) OR email = :email"),
        PersonalRows("lead_identity", "lead_id = ANY(:lead_ids) OR (kind = 'email' AND value = :email)"),
        PersonalRows("lead_score", "lead_id = ANY(:lead_ids) OR email = :email"),
    ),
    lead_ids="SELECT lead_id FROM lead_identity WHERE kind = 'email' AND value = :email "
             "UNION SELECT lead_id FROM lead_score WHERE email = :email",
    keyed_topics=(topics.SCORED,),
)
