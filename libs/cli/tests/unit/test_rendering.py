"""Tables and key/value blocks for people; --json passes the API's answer through."""

from __future__ import annotations

import json

from cli_fakes import FakeServices, run

from leadflow_cli.render import Output, block, cell, render, table


def test_a_table_aligns_columns_and_shows_missing_values_as_a_dash() -> None:
    text = table([{"id": "rep-ada", "team": None, "active": True}, {"id": "r2", "team": "emea", "active": False}],
                 [("id", "id"), ("team", "team"), ("active", "active")])
    assert text.splitlines() == [
        "ID       TEAM  ACTIVE",
        "rep-ada  -     yes",
        "r2       emea  no",
    ]


def test_cells_join_plain_lists_and_shorten_long_values() -> None:
    assert cell(["US-CA", "EMEA"]) == "US-CA, EMEA"
    assert cell([]) == "-"
    assert cell({"a": 1}) == '{"a":1}'
    long = cell("x" * 100)
    assert len(long) == 60 and long.endswith("…")


def test_dotted_columns_reach_into_nested_objects() -> None:
    text = table([{"business_hours": {"timezone": "Europe/Berlin"}}], [("tz", "business_hours.timezone")])
    assert text.splitlines()[1] == "Europe/Berlin"


def test_an_empty_list_says_so() -> None:
    assert table([], [("id", "id")]) == "(none)"


def test_a_block_shows_scalars_on_one_line_and_nested_values_indented() -> None:
    text = block({"key": "demo", "field_mapping": {"your-email": "email"}, "required_fields": ["email"]})
    assert "key              demo" in text
    assert "field_mapping:\n  {\n    \"your-email\": \"email\"\n  }" in text
    assert "required_fields  email" in text


def test_json_output_is_the_data_unchanged() -> None:
    data = [{"id": "x", "nested": {"a": [1, 2]}}]
    assert json.loads(render(Output(data, [("id", "id")]), as_json=True)) == data


def test_list_commands_print_a_table_and_json_on_request(fake: FakeServices) -> None:
    reps = [{"id": "rep-ada", "name": "Ada", "team_id": "emea", "territories": ["DE", "FR"], "weight": 1,
             "active": True, "open_leads": 3, "assigned_today": 1, "unavailable_now": None}]
    fake.on("routing", "GET", "/v1/admin/reps", body=reps)
    human = run(fake, "reps", "list")
    assert human.out.splitlines()[0].split() == ["ID", "NAME", "TEAM", "TERRITORIES", "WEIGHT", "ACTIVE", "OPEN",
                                                 "TODAY", "UNAVAILABLE", "NOW"]
    assert "rep-ada  Ada   emea  DE, FR" in human.out
    assert run(fake, "reps", "list", "--json").json == reps


def test_territories_are_grouped_from_the_reps(fake: FakeServices) -> None:
    fake.on("routing", "GET", "/v1/admin/reps", body=[
        {"id": "a", "territories": ["EMEA", "US-CA"], "active": True},
        {"id": "b", "territories": ["EMEA"], "active": False},
    ])
    assert run(fake, "territories", "list", "--json").json == [
        {"territory": "EMEA", "reps": ["a", "b"], "active_reps": ["a"]},
        {"territory": "US-CA", "reps": ["a"], "active_reps": ["a"]},
    ]
