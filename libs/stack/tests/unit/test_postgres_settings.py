"""The settings the stack's PostgreSQL starts with (``leadflow.conf``, written at every start): plans of slow
statements are logged only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow_stack.errors import StackError
from leadflow_stack.postgres import AUTO_EXPLAIN_ENV, PostgresCluster


def written_settings(tmp_path: Path) -> dict[str, str]:
    cluster = PostgresCluster(tmp_path, port=15999, log_path=tmp_path / "postgres.log", marker_root=tmp_path)
    cluster.data_dir.mkdir(parents=True)
    cluster._write_settings()
    lines = (cluster.data_dir / "leadflow.conf").read_text().splitlines()
    return dict(line.split(" = ", 1) for line in lines)


def test_plans_are_logged_only_when_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTO_EXPLAIN_ENV, raising=False)
    plain = written_settings(tmp_path / "plain")
    assert plain["shared_preload_libraries"] == "'pg_stat_statements'"
    assert not any(key.startswith("auto_explain.") for key in plain)

    monkeypatch.setenv(AUTO_EXPLAIN_ENV, "40")
    explained = written_settings(tmp_path / "explained")
    assert explained["shared_preload_libraries"] == "'pg_stat_statements,auto_explain'"
    assert explained["auto_explain.log_min_duration"] == "'40.0ms'"
    assert explained["auto_explain.log_analyze"] == "on"
    # Logged at WARNING: the server logs nothing below it (log_min_messages).
    assert explained["auto_explain.log_level"] == explained["log_min_messages"] == "warning"


def test_a_value_that_is_not_a_number_of_milliseconds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTO_EXPLAIN_ENV, "slow")
    with pytest.raises(StackError, match=f"{AUTO_EXPLAIN_ENV} must be a number of milliseconds, not 'slow'"):
        written_settings(tmp_path)
