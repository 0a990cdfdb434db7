"""Finding a lead without I/O: the email as enrichment stores it, the cursor, the SLA state, the statement."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow_contracts import Attribution, DataQuality, LeadCaptured, LeadContact, LeadEnriched, LeadProfile
from leadflow_sla import search
from leadflow_sla.identity import identity_changes, normalized_email
from leadflow_sla.search_store import search_statement

AT = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)


def test_an_address_is_found_however_it_was_typed() -> None:
    assert normalized_email("  Ada.Park@Initech.EXAMPLE ") == "ada.park@initech.example"
    assert normalized_email("ada@bücher.example") == "ada@xn--bcher-kva.example"
    assert normalized_email("not-an-address") is None
    assert normalized_email("   ") is None


def test_enrichment_names_the_lead_over_what_was_typed() -> None:
    fill = LeadCaptured(lead_id="l1", form_key="demo", submitted_at=AT, attribution=Attribution(),
                        contact=LeadContact(email="ADA@Initech.example", first_name=" ada ", company="initech inc"))
    assert identity_changes(fill, None) == {"email": "ada@initech.example", "full_name": "ada",
                                            "company": "initech inc"}
    enriched = LeadEnriched(lead_id="l1", captured_lead_id="l1", form_key="demo", quality=DataQuality(score=1),
                            profile=LeadProfile(email="ada@initech.example", first_name="Ada", last_name="Park",
                                                company="Initech"),
                            original=LeadContact(email="ADA@Initech.example", full_name="ada p"))
    assert identity_changes(enriched, "ada@initech.example") == {"email": "ada@initech.example",
                                                                 "full_name": "Ada Park", "company": "Initech"}
    # Enrichment found the address invalid: what was typed is kept if nothing was known, as typed names go.
    invalid = LeadEnriched(lead_id="l1", captured_lead_id="l1", form_key="demo", quality=DataQuality(score=1),
                           profile=LeadProfile(), original=LeadContact(full_name="Eve Ng"))
    assert identity_changes(invalid, None) == {"full_name": "Eve Ng"}


def test_a_cursor_reads_back_only_for_its_own_sort() -> None:
    by_date = search.encode_cursor("-captured_at", AT, "lead-1")
    assert search.decode_cursor(by_date, "-captured_at") == (AT, "lead-1")
    assert search.decode_cursor(by_date, "captured_at") is None
    by_score = search.encode_cursor("score", 82.5, "lead-2")
    assert search.decode_cursor(by_score, "score") == (82.5, "lead-2")
    assert search.decode_cursor(by_score, "-score") is None
    for garbage in ("garbage", "", "W10", search.encode_cursor("score", "high", "x")):  # type: ignore[arg-type]
        assert search.decode_cursor(garbage, "score") is None


def _found(**changes: object) -> search.FoundLead:
    values: dict[str, object] = dict(
        lead_id="l1", email=None, full_name=None, company=None, stage_rank=1, tier="hot", score=None,
        rep_id=None, team_id=None, queue=None, source=None, utm_campaign=None, form_key=None, captured_at=AT,
        sla_outcome=None, breach_count=0, clock_running=False)
    values.update(changes)
    return search.FoundLead(**values)  # type: ignore[arg-type]


def test_the_sla_state_says_what_the_clocks_did() -> None:
    assert search.sla_state(_found()) == "none"
    assert search.sla_state(_found(clock_running=True)) == "running"
    assert search.sla_state(_found(clock_running=True, sla_outcome="breached")) == "breached"
    assert search.sla_state(_found(sla_outcome="met")) == "met"
    assert search.item(_found())["stage"] == "mql"
    assert search.sort_key(_found(), "-score") == search.UNSCORED


def test_the_statement_reads_the_filter_and_sort_as_their_indexes_are_written() -> None:
    query = search.LeadQuery({"company": "initech", "stage": 3}, AT, None, "-score", (40.0, "pf-9"), 20)
    statement, args = search_statement(query)
    assert "lower(company) = $1 AND stage_rank = $2 AND captured_at >= $3" in statement
    assert "(coalesce(score, -1.0), lead_id) < ($4, $5)" in statement
    assert statement.endswith("ORDER BY coalesce(score, -1.0) DESC, lead_id DESC LIMIT 20")
    assert "merged_into IS NULL AND captured_at IS NOT NULL" in statement
    assert args == ["initech", 3, AT, 40.0, "pf-9"]
