import time

import pytest

from leadflow_kit.patterns import MAX_PATTERN_LENGTH, pattern_error, pattern_found


def test_patterns_match_anywhere_ignoring_case() -> None:
    assert pattern_found(r"^vp\b", "VP Sales")
    assert pattern_found("sales", "Head of Sales EMEA")
    assert not pattern_found(r"^vp\b", "SVP Sales")


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=x)y", r"(?<!x)y", "a{2000}", "[z-a]", "(unclosed", r"\Z"])
def test_what_re2_cannot_run_is_an_error_with_its_reason(pattern: str) -> None:
    reason = pattern_error(pattern)
    assert reason and isinstance(reason, str) and not reason.startswith("b'")


def test_an_overlong_pattern_is_refused() -> None:
    assert pattern_error("a" * MAX_PATTERN_LENGTH) is None
    assert pattern_error("a" * (MAX_PATTERN_LENGTH + 1)) == f"longer than {MAX_PATTERN_LENGTH} characters"


def test_a_pattern_that_does_not_compile_matches_nothing() -> None:
    assert not pattern_found(r"(a)\1", "aa")


def test_a_catastrophic_pattern_for_backtracking_runs_in_linear_time() -> None:
    # Python's re needs about 2**n steps for (a+)+$ against n a's and one b; RE2 reads the text once.
    started = time.perf_counter()
    assert not pattern_found(r"(a+)+$", "a" * 5000 + "b")
    assert not pattern_found(r"(x+x+)+y", "x" * 5000)
    assert time.perf_counter() - started < 1.0
