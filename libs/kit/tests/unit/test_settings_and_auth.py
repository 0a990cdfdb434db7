import csv
import io

import pytest
from pydantic import ValidationError

from leadflow_kit.auth import Principal, generate_key, hash_key, new_public_id
from leadflow_kit.csvexport import spreadsheet_safe, to_csv
from leadflow_kit.errors import field_errors
from leadflow_kit.settings import ServiceSettings


def test_placeholder_admin_key_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(environment="production", admin_api_key="dev-admin-key")
    assert ServiceSettings(environment="development", admin_api_key="dev-admin-key").admin_api_key is not None
    ServiceSettings(environment="production", admin_api_key="a-long-and-random-admin-key-0123")


def test_production_refuses_a_bootstrap_key_shorter_than_32_characters() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        ServiceSettings(environment="production", admin_api_key="x" * 31)
    assert ServiceSettings(environment="production", admin_api_key="x" * 32).admin_api_key is not None
    assert ServiceSettings(environment="test", admin_api_key="x" * 20).admin_api_key is not None


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


def test_a_key_carries_its_public_id_apart_from_its_secret() -> None:
    public_id = new_public_id()
    key = generate_key(public_id)
    prefix, secret = key[: len("lf_") + len(public_id) + 1], key[len("lf_") + len(public_id) + 1:]
    assert prefix == f"lf_{public_id}_" and len(secret) >= 43
    assert len(public_id) == 12 and public_id != new_public_id()


def test_a_key_hands_on_only_scopes_it_holds() -> None:
    forms_reader = Principal("k", "n", frozenset({"forms:read", "api-keys:write"}))
    assert forms_reader.lacks(["forms:read"]) == []
    assert forms_reader.lacks(["forms:read", "forms:write", "*"]) == ["*", "forms:write"]
    assert forms_reader.lacks(["forms:*"]) == ["forms:*"]
    area = Principal("k", "n", frozenset({"forms:*"}))
    assert area.lacks(["forms:*", "forms:write"]) == []
    assert area.lacks(["*"]) == ["*"]
    assert Principal("k", "n", frozenset({"*:*"})).lacks(["*"]) == ["*"]
    assert Principal("k", "n", frozenset({"*"})).lacks(["*", "webhooks:write", "x:*"]) == []


def test_scopes_allow_exact_wildcard_and_area_wildcard() -> None:
    assert Principal("k", "n", frozenset({"*"})).allows("forms:write")
    assert Principal("k", "n", frozenset({"forms:*"})).allows("forms:write")
    assert Principal("k", "n", frozenset({"forms:read"})).allows("forms:read")
    assert not Principal("k", "n", frozenset({"forms:read"})).allows("forms:write")


def test_validation_errors_name_the_field() -> None:
    errors = field_errors([{"loc": ("body", "email"), "type": "missing", "msg": "Field required"}])
    assert [(e.field, e.code, e.message) for e in errors] == [("email", "missing", "Field required")]


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://evil\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1", "-", "=", "-1-"])
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text
    header, row = csv.reader(io.StringIO(to_csv(["=group"], [[text]]), newline=""))
    assert header == ["'=group"] and row == ["'" + text]


@pytest.mark.parametrize("value", ["spring", "a=b", " =1", "-1", "-2.5", "1e-05", "-3E+2", 7, -4, -0.5, None, ""])
def test_csv_text_and_numbers_stay_as_they_are(value: str | int | float | None) -> None:
    assert spreadsheet_safe(value) == value


def test_a_carriage_return_inside_a_cell_cannot_start_a_row() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(["group"], [["spring\r=1+1", 3]]), newline="")))
    assert rows == [["group"], ["spring\r=1+1", "3"]]
