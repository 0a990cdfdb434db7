"""``leadflow-console seed-demo`` where a deployment mounts no first admin's password: nothing to create, and
no failure (the Helm chart mounts the file only when its Secret has the password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow_console.__main__ import main


def test_seed_demo_without_the_password_file_creates_no_one_and_succeeds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSOLE_FIRST_ADMIN_PASSWORD_FILE", str(tmp_path / "absent"))
    # Nothing may reach the database: it is nowhere.
    monkeypatch.setenv("CONSOLE_DATABASE_URL", "postgresql+asyncpg://nobody:x@127.0.0.1:1/none")
    with pytest.raises(SystemExit) as exited:
        main(["seed-demo"])
    assert exited.value.code == 0
