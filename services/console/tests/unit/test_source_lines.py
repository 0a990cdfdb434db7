"""Placing a service's field errors at the line of the YAML text the user typed."""

from __future__ import annotations

from leadflow_console import source_lines

MODEL = """\
name: demo
fit_rules:
  - id: industry
    all:
      - field: industry
        op: in
        value: [software]
    points: 15
  - id: size
    all: [{field: employee_count, op: gte, value: 1000}]
    points: lots
"""


def test_a_scoring_path_with_indexes_points_at_its_key():
    root = source_lines.parse(MODEL).root
    assert source_lines.line_of(root, "fit_rules[1].points") == 11
    assert source_lines.line_of(root, "fit_rules[0].all[0].op") == 6
    # The draft dry run names the model inside its request body.
    assert source_lines.line_of(root, "model.fit_rules[1].points") == 11


def test_a_dotted_path_with_numbers_as_routing_names_them():
    text = "rules:\n  - id: a\n    team_id: sales\n  - id: b\n    team_id: nobody\n"
    assert source_lines.line_of(source_lines.parse(text).root, "rules.1.team_id") == 5


def test_a_missing_key_points_at_the_nearest_part_that_is_there():
    root = source_lines.parse(MODEL).root
    assert source_lines.line_of(root, "fit_rules[1].reason") == 9
    assert source_lines.line_of(root, "tiers") == 1


def test_a_syntax_error_is_a_problem_at_its_line():
    parsed = source_lines.parse("name: demo\nfit_rules:\n  - id: [unclosed\n  points: 3\n")
    assert not parsed.ok
    [problem] = parsed.problems
    assert problem.line == 4
    assert problem.message.startswith("not valid YAML")


def test_problems_are_placed_and_numbered_lines_carry_them():
    root = source_lines.parse(MODEL).root
    problems = source_lines.place(root, [
        {"field": "fit_rules[1].points", "message": "Input should be a valid number"},
        {"field": "body", "message": "something about the whole model"},
    ])
    assert [(p.field, p.line) for p in problems] == [("fit_rules[1].points", 11), ("body", None)]
    lines = source_lines.numbered(MODEL, problems)
    assert lines[10].text == "    points: lots"
    assert [p.message for p in lines[10].problems] == ["Input should be a valid number"]
    assert all(not line.problems for line in lines[:10])


def test_path_parts_drop_the_request_envelope():
    assert source_lines.path_parts("body.rules.0.conditions[1].value") == ["rules", 0, "conditions", 1, "value"]


def test_aliases_are_refused_before_they_can_expand():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    parsed = source_lines.parse(bomb)
    assert not parsed.ok
    assert "aliases" in parsed.problems[0].message
    # An alias is the node it names: the problem is placed at the anchor's line.
    assert parsed.problems[0].line == 1


def test_nesting_too_deep_is_refused_not_a_crash():
    parsed = source_lines.parse("[" * 50_000 + "]" * 50_000)
    assert not parsed.ok
    assert parsed.problems[0].message.startswith("not valid YAML") or "nested" in parsed.problems[0].message


def test_dates_and_sets_come_back_ready_to_send_as_json():
    parsed = source_lines.parse("since: 2026-01-02\ntags: !!set {a: null}\nscore: .nan\n")
    assert parsed.document == {"since": "2026-01-02", "tags": ["a"], "score": "nan"}


def test_control_characters_are_a_problem_not_a_crash():
    parsed = source_lines.parse("rules: \x0e")
    assert not parsed.ok
    assert "special characters are not allowed" in parsed.problems[0].message
