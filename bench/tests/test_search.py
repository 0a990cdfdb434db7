"""The lead search step's query mix: every filter and sort of GET /v1/leads, over leads the prefill wrote."""

from __future__ import annotations

import random

from bench import prefill, search


def test_the_mix_uses_every_filter_and_sort_with_values_the_prefill_wrote() -> None:
    mix = search.queries(1000000, random.Random(1))
    used = {name for _, params in mix for name in params}
    assert used >= {"email", "company", "owner", "team", "queue", "stage", "tier", "source", "campaign", "form",
                    "captured_from", "captured_to", "sort", "limit"}
    assert {params.get("sort", "-captured_at") for _, params in mix} == {"captured_at", "-captured_at", "score",
                                                                         "-score"}
    email = next(params["email"] for kind, params in mix if kind == "email")
    number = int(email.removeprefix("PF").split("@")[0])
    assert 1 <= number <= 1000000 and email.endswith("@prefill.invalid")
    lead_row = prefill.sla_sql(5)[0]
    # The prefill writes what the mix looks for.
    for written in ("'Company ' || g % 50000", "'triage'", "'pf-rep-' || g % 40", "'pf-team-' || g % 5",
                    "'google', 'brand'", "'demo'"):
        assert written in lead_row
    assert search.COMPANIES == 50000
