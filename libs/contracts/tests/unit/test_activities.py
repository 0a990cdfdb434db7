"""The activity vocabulary: its types, custom types, and what is refused."""

from __future__ import annotations

import pytest

from leadflow_contracts.activities import ACTIVITY_TYPES, is_known_activity_type, unknown_activity_type_message


@pytest.mark.parametrize("name", [*ACTIVITY_TYPES, "custom.trial_started", "custom.a", "custom.x:y-z.1"])
def test_vocabulary_and_custom_types_are_known(name: str) -> None:
    assert is_known_activity_type(name)


@pytest.mark.parametrize("name", ["demo_request", "free_trial_signup", "custom.", "custom.Upper", "Page_View",
                                  "custom." + "x" * 58, ""])
def test_other_types_are_unknown(name: str) -> None:
    assert not is_known_activity_type(name)


def test_the_refusal_names_the_vocabulary_but_not_internal_types() -> None:
    message = unknown_activity_type_message("demo_request")
    assert "'demo_request' is not an activity type" in message
    assert "demo_requested" in message and "custom.<name>" in message
    assert "form_submission" not in message
