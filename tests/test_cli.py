"""The operator's first steps: migrate an empty database, then find the ledger immutable."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from services import migrate


def community_ledger(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_upgrade_then_a_direct_update_fails_with_a_clear_message(
    empty_database_url: str,
) -> None:
    upgraded = community_ledger("db", "upgrade", database_url=empty_database_url)

    assert upgraded.returncode == 0, upgraded.stderr
    assert f"database at revision {migrate.head_revision()}" in upgraded.stdout
    with psycopg.connect(empty_database_url) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute("UPDATE events SET data = '{}'")
    assert "the ledger is append-only: UPDATE on events is refused" in str(refused.value)


def test_db_current_and_downgrade_report_the_revision(empty_database_url: str) -> None:
    before = community_ledger("db", "current", database_url=empty_database_url)
    community_ledger("db", "upgrade", database_url=empty_database_url)
    at_head = community_ledger("db", "current", database_url=empty_database_url)
    down = community_ledger("db", "downgrade", database_url=empty_database_url)

    assert before.stdout.strip() == f"base (empty) (behind head {migrate.head_revision()})"
    assert at_head.stdout.strip() == f"{migrate.head_revision()} (at head)"
    assert down.stdout.strip() == "database at revision base (empty)"


@pytest.mark.parametrize(
    "command",
    [("projections", "run"), ("projections", "status"), ("keys", "list"), ("export", "jsonl")],
    ids=" ".join,
)
def test_a_command_on_a_database_never_upgraded_says_to_upgrade_in_one_line(
    empty_database_url: str, command: tuple[str, ...]
) -> None:
    done = community_ledger(*command, database_url=empty_database_url)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the database "), last
    assert last.endswith("run `community-ledger db upgrade` first"), last
