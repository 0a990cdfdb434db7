"""Capture's checks of a posted form are linear in what was posted (leadflow_stack.timing): the email
pattern and the control-character scan read each character a bounded number of times."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leadflow_capture import domain
from leadflow_capture.domain import EMAIL_PATTERN, FormDefinition, Limits
from leadflow_stack.timing import LINEAR_8X, growth, repeated

FIELD_LIMIT = Limits().max_field_length
SMALL = FIELD_LIMIT // 8
FORM = FormDefinition(key="f", name="F", field_mapping={"org": "company"})
# What the email pattern's classes and the domain's dot care about.
adversarial = st.lists(st.sampled_from(["a", ".", "@", " ", "-", "é", "(", "\t", "1", "x."]), min_size=1,
                       max_size=6).map("".join)


def _check_fill(text: str) -> None:
    posted = {"email": text, "org": text, "first_name": text, "utm_source": text, "notes": text}
    domain.validate_submission(FORM, domain.map_submission(FORM, posted))


@pytest.mark.parametrize("check", [EMAIL_PATTERN.fullmatch, _check_fill], ids=["email pattern", "whole fill"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(piece=adversarial)
@example(piece="a.")  # "a@" + dots and letters that never end in a valid domain
@example(piece="a")
def test_checking_a_fill_is_linear_in_adversarial_input(check, piece: str) -> None:
    small, large = "a@" + repeated(piece, SMALL) + "@", "a@" + repeated(piece, FIELD_LIMIT) + "@"
    ratio = growth(check, small, large)
    assert ratio < LINEAR_8X, f"{FIELD_LIMIT} characters of {piece!r} took {ratio:.0f}x {SMALL}"


@pytest.mark.parametrize("email", ["a@b.c", "a.b@c.d.e", "a@.b.c", "a@b..c", "é@ü.de"])
def test_the_email_pattern_takes_a_dot_inside_the_domain(email: str) -> None:
    assert EMAIL_PATTERN.fullmatch(email)


@pytest.mark.parametrize("email", ["a@.b", "a@b.", "a@b", "a@@b.c", "a@b.c\n", "a b@c.d", "a@b.c@d.e"])
def test_the_email_pattern_refuses_what_is_no_address(email: str) -> None:
    assert not EMAIL_PATTERN.fullmatch(email)
