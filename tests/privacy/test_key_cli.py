"""A missing or wrong master key is one line on stderr and exit status 2, before anything starts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services import migrate
from services.privacy.master import new_master_key, parse_master_key
from tests.conftest import ROOT, TEST_MASTER_KEY

WRONG_KEY = new_master_key().encoded()


def community_ledger(
    *args: str, database_url: str, master_key: str | None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, **extra}
    env.pop("LEDGER_MASTER_KEY", None)
    if master_key is not None:
        env["LEDGER_MASTER_KEY"] = master_key
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Community Ledger API on" not in result.stdout


@pytest.fixture
def upgraded(empty_database_url: str) -> str:
    """A ledger at head whose keys are wrapped by the test master key."""
    done = community_ledger("db", "upgrade", database_url=empty_database_url,
                            master_key=TEST_MASTER_KEY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return empty_database_url


COMMANDS = [
    ("db", "upgrade"),
    ("serve", "--port", "9"),
    ("projections", "run"),
    ("import", "jsonl", str(ROOT / "examples" / "kaizenblog" / "kaizenblog.jsonl")),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_without_a_master_key_nothing_starts(command: tuple[str, ...], empty_database_url: str):
    result = community_ledger(*command, database_url=empty_database_url, master_key=None)

    assert_refused(result, "no master key: set LEDGER_MASTER_KEY or LEDGER_MASTER_KEY_FILE")
    assert migrate.current_revision(empty_database_url) is None


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_with_the_wrong_master_key_nothing_starts(command: tuple[str, ...], upgraded: str):
    result = community_ledger(*command, database_url=upgraded, master_key=WRONG_KEY)

    wrong = parse_master_key(WRONG_KEY, source="test").kek_id
    assert_refused(result, f"the master key given ({wrong}) is not the one the ledger's keys")


def test_a_malformed_master_key_is_refused_without_echoing_it(empty_database_url: str) -> None:
    result = community_ledger("db", "upgrade", database_url=empty_database_url,
                              master_key="hunter2-is-not-a-key")  # fmt: skip

    assert_refused(result, "LEDGER_MASTER_KEY does not hold a master key")
    assert "hunter2" not in result.stderr


def test_rotate_master_then_only_the_new_key_opens_the_ledger(
    upgraded: str, tmp_path: Path
) -> None:
    new_file = tmp_path / "new.key"
    made = community_ledger("keys", "new-master", "--output", str(new_file),
                            database_url=upgraded, master_key=None)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600
    new_key = new_file.read_text().strip()

    rotated = community_ledger("keys", "rotate-master", "--new-key-file", str(new_file),
                               database_url=upgraded, master_key=TEST_MASTER_KEY)  # fmt: skip

    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith(
        "re-wrapped 0 member keys, 1 secrets and 0 webhook secrets: master key "
    )
    old_key = community_ledger("db", "upgrade", database_url=upgraded, master_key=TEST_MASTER_KEY)
    assert_refused(old_key, "the master key given")
    new = community_ledger("db", "upgrade", database_url=upgraded, master_key=new_key)
    assert new.returncode == 0, new.stderr


def test_rotate_master_takes_the_new_key_from_the_environment(upgraded: str) -> None:
    new_key = new_master_key()

    rotated = community_ledger("keys", "rotate-master", database_url=upgraded,
                               master_key=TEST_MASTER_KEY,
                               LEDGER_NEW_MASTER_KEY=new_key.encoded())  # fmt: skip

    assert rotated.returncode == 0, rotated.stderr
    assert f"-> {new_key.kek_id}" in rotated.stdout


def test_rotate_master_without_a_new_key_says_where_to_give_it(upgraded: str) -> None:
    result = community_ledger("keys", "rotate-master", database_url=upgraded,
                              master_key=TEST_MASTER_KEY)  # fmt: skip

    assert_refused(result, "no new master key: give --new-key-file FILE or set LEDGER_NEW")


def test_new_master_prints_a_key_the_ledger_accepts(empty_database_url: str) -> None:
    made = community_ledger("keys", "new-master", database_url=empty_database_url,
                            master_key=None)  # fmt: skip

    assert made.returncode == 0, made.stderr
    assert len(parse_master_key(made.stdout, source="stdout").kek_id) == 20


@pytest.mark.slow
def test_the_embedded_default_makes_its_key_file_on_first_start_and_holds_to_it(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LEDGER_MASTER_KEY")}
    env["LEDGER_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT,
                              env={**env, **extra}, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    first = run("db", "upgrade")
    key_file = tmp_path / "data" / "master.key"
    made = key_file.read_text()
    again = run("db", "upgrade")
    wrong = run("db", "upgrade", LEDGER_MASTER_KEY=WRONG_KEY)

    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert again.returncode == 0, again.stderr
    assert key_file.read_text() == made
    assert_refused(wrong, "the master key given")


@pytest.mark.slow
def test_rotating_the_embedded_defaults_key_replaces_its_key_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LEDGER_MASTER_KEY")}
    env["LEDGER_DATA_DIR"] = str(tmp_path / "data")
    new_key = new_master_key()

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT,
                              env={**env, **extra}, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    assert run("db", "upgrade").returncode == 0
    rotated = run("keys", "rotate-master", LEDGER_NEW_MASTER_KEY=new_key.encoded())
    after = run("db", "upgrade")

    key_file = tmp_path / "data" / "master.key"
    assert rotated.returncode == 0, rotated.stderr
    assert f"{key_file} now holds the new master key" in rotated.stdout
    assert parse_master_key(key_file.read_text(), source="file").kek_id == new_key.kek_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in key_file.parent.glob("*master.key*")) == ["master.key"]
    assert after.returncode == 0, after.stderr
