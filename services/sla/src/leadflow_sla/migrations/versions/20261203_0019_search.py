"""finding any lead (issue 19): who the lead is and where it waits on its funnel row, and an index for every
filter and sort of GET /v1/leads

Revision ID: 20261203_19_search
Revises: 20261203_19_revenue
Create Date: 2026-12-03
"""

from alembic import op

revision = "20261203_19_search"
down_revision = "20261203_19_revenue"
branch_labels = None
depends_on = None

COLUMNS = (("email", "VARCHAR(320)"), ("full_name", "VARCHAR(255)"), ("company", "VARCHAR(255)"),
           ("queue", "VARCHAR(64)"))
SEARCHABLE = "WHERE merged_into IS NULL AND captured_at IS NOT NULL"
INDEXES = (
    ("ix_lead_search_company", "lower(company), captured_at, lead_id"),
    ("ix_lead_search_rep", "rep_id, captured_at, lead_id"),
    ("ix_lead_search_team", "team_id, captured_at, lead_id"),
    ("ix_lead_search_queue", "queue, captured_at, lead_id"),
    ("ix_lead_search_stage", "stage_rank, captured_at, lead_id"),
    ("ix_lead_search_tier", "tier, captured_at, lead_id"),
    ("ix_lead_search_source", "source, captured_at, lead_id"),
    ("ix_lead_search_campaign", "utm_campaign, captured_at, lead_id"),
    ("ix_lead_search_form", "form_key, captured_at, lead_id"),
    ("ix_lead_search_captured_at", "captured_at, lead_id"),
    ("ix_lead_search_score", "coalesce(score, -1.0), lead_id"),
    ("ix_lead_search_rep_score", "rep_id, coalesce(score, -1.0), lead_id"),
    ("ix_lead_search_team_score", "team_id, coalesce(score, -1.0), lead_id"),
    ("ix_lead_search_queue_score", "queue, coalesce(score, -1.0), lead_id"),
)


def upgrade() -> None:
    # IF NOT EXISTS: the first revision creates the tables as tables.py describes them now.
    for name, kind in COLUMNS:
        op.execute(f"ALTER TABLE lead ADD COLUMN IF NOT EXISTS {name} {kind}")
    # Not partial: an erasure by email alone finds the person's leads by it.
    op.execute("CREATE INDEX IF NOT EXISTS ix_lead_search_email ON lead (email, captured_at, lead_id)")
    for name, keys in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON lead ({keys}) {SEARCHABLE}")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_lead_search_email")
    for name, _ in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for name, _ in COLUMNS:
        op.execute(f"ALTER TABLE lead DROP COLUMN IF EXISTS {name}")
