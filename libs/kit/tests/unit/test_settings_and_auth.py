import pytest
from pydantic import ValidationError

from leadflow_kit.auth import Principal, generate_key, hash_key
from leadflow_kit.errors import field_errors
from leadflow_kit.settings import ServiceSettings


def test_placeholder_admin_key_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(environment="production", admin_api_key="dev-admin-key")
    assert ServiceSettings(environment="development", admin_api_key="dev-admin-key").admin_api_key is not None
    ServiceSettings(environment="production", admin_api_key="a-long-and-random-admin-key-0123")


def test_the_inbox_must_outlive_the_dlq_replay_window() -> None:
    # A replayed dead letter reaches every consumer again; one that forgot the event would handle it twice.
    with pytest.raises(ValidationError, match="handled twice"):
        ServiceSettings(inbox_retention_days=7, dlq_replay_window_days=7)
    with pytest.raises(ValidationError, match="handled twice"):
        ServiceSettings(dlq_replay_window_days=45)
    assert ServiceSettings().inbox_retention_days > ServiceSettings().dlq_replay_window_days
    ServiceSettings(inbox_retention_days=60, dlq_replay_window_days=45)


def test_topic_prefix_applies_to_topics_and_consumer_group() -> None:
    settings = ServiceSettings(service_name="scoring", topic_prefix="t7.")
    assert settings.topic("leads.enriched") == "t7.leads.enriched"
    assert settings.consumer_group == "t7.scoring"


def test_keys_are_random_and_stored_only_as_hashes() -> None:
    first, second = generate_key(), generate_key()
    assert first != second and first.startswith("lf_")
    assert hash_key(first) != first and len(hash_key(first)) == 64


def test_scopes_allow_exact_wildcard_and_area_wildcard() -> None:
    assert Principal("k", "n", frozenset({"*"})).allows("forms:write")
    assert Principal("k", "n", frozenset({"forms:*"})).allows("forms:write")
    assert Principal("k", "n", frozenset({"forms:read"})).allows("forms:read")
    assert not Principal("k", "n", frozenset({"forms:read"})).allows("forms:write")


def test_validation_errors_name_the_field() -> None:
    errors = field_errors([{"loc": ("body", "email"), "type": "missing", "msg": "Field required"}])
    assert [(e.field, e.code, e.message) for e in errors] == [("email", "missing", "Field required")]
