"""Every normalizer runs in time linear in what an outsider typed, up to the field limit.

Hypothesis builds adversarial text by repeating short pieces that the patterns care about (legal
suffixes, separators, dots, title words, digits, name particles); each normalizer is timed on n and
8n characters of it (leadflow_stack.timing): linear time grows about 8x, a quadratic step about 64x,
and a backtracking blow-up never returns.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leadflow_contracts import LeadContact
from leadflow_enrichment import normalize
from leadflow_enrichment.domain import normalize_contact
from leadflow_enrichment.titles import classify_title
from leadflow_stack.timing import LINEAR_8X, growth, repeated

# capture's Limits.max_field_length: no form field reaches enrichment longer than this.
FIELD_LIMIT = 2000
SMALL = FIELD_LIMIT // 8

PIECES = [
    " co", " kg", " gmbh", " s", " a", " l", " sa", " de", " cv", " inc", " ltd", " pty", " sp", " z", " o",
    ",", ".", " ", "-", "&", "/", "@", "+", "(", ")", "x", "A", "1", "0", "k", "m", "é",
    " chief", " officer", " n", " vp", " sr.", " of", " head", " engineer", " demand gen",
    " van", " der", " mr.", " jr", " dr", "www.", "http://", ".com", ".co.uk",
]
adversarial = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("".join)
KNOWN_WORST = [" co kg", " S.A. de", "chief ", "n / ", "1 1,", "A ", "van der ", "x@a.", "1-(", "http://a."]


def _contact(text: str) -> None:
    normalize_contact(LeadContact(email=text, first_name=text, last_name=text, full_name=text, company=text,
                                  job_title=text, country=text, state=text, phone=text, website=text,
                                  employee_count=text, annual_revenue=text))


NORMALIZERS: dict[str, Callable[[str], object]] = {
    "clean_company": normalize.clean_company,
    "company_key": normalize.company_key,
    "classify_title": classify_title,
    "parse_number": normalize.parse_number,
    "normalize_country": normalize.normalize_country,
    "normalize_state": lambda text: normalize.normalize_state(text, "US"),
    "normalize_name (first, last)": lambda text: normalize.normalize_name(text, text, None),
    "normalize_name (full)": lambda text: normalize.normalize_name(None, None, text),
    "normalize_phone": lambda text: normalize.normalize_phone(text, "US"),
    "normalize_email": normalize.normalize_email,
    # Past the cache, which would time a dictionary lookup.
    "registrable_domain": normalize.registrable_domain.__wrapped__,
    "normalize_contact (every field)": _contact,
}


def _growth(call: Callable[[str], object], piece: str) -> float:
    return growth(call, repeated(piece, SMALL), repeated(piece, FIELD_LIMIT))


@pytest.mark.parametrize("name", list(NORMALIZERS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(piece=adversarial)
@example(piece=KNOWN_WORST[0])
def test_each_normalizer_is_linear_in_adversarial_input(name: str, piece: str) -> None:
    ratio = _growth(NORMALIZERS[name], piece)
    assert ratio < LINEAR_8X, f"{name}: {FIELD_LIMIT} characters of {piece!r} took {ratio:.0f}x {SMALL}"


@pytest.mark.parametrize("piece", KNOWN_WORST)
def test_known_worst_cases_are_linear_in_every_normalizer(piece: str) -> None:
    for name, call in NORMALIZERS.items():
        ratio = _growth(call, piece)
        assert ratio < LINEAR_8X, f"{name}: {FIELD_LIMIT} characters of {piece!r} took {ratio:.0f}x {SMALL}"


def test_a_company_repeating_a_legal_suffix_is_cleaned_in_one_pass() -> None:
    # The case that pinned the event loop for hours: each " co kg" is a suffix, the name stays.
    assert normalize.clean_company("Acme" + " co kg" * 330) == "Acme"
    assert normalize.company_key("Acme" + " Co. KG," * 250) == "acme"
    assert normalize.clean_company(" co kg" * 330) == "co"
