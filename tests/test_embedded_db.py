"""The embedded PostgreSQL: shared by concurrent starters, stopped by the last, clear on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

START = (
    "import sys, pathlib, psycopg\n"
    "from services.embedded_db import embedded_server_url\n"
    "url = embedded_server_url(pathlib.Path(sys.argv[1]))\n"
    "psycopg.connect(url).close()\n"
    "print(url)\n"
)


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_two_processes_starting_it_at_once_share_one_server_that_stops_after_them(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", START, str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [starter.communicate(timeout=120) for starter in starters]

    assert [s.returncode for s in starters] == [0, 0], results
    urls = {out.strip() for out, _ in results}
    assert len(urls) == 1, urls
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), (
        "the last holder left it running"
    )


def test_a_server_started_by_one_process_is_reused_by_the_next(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", START + "sys.stdout.flush(); sys.stdin.read()", str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    url = holder.stdout.readline().strip()
    pid_file = data_dir / "postgres" / "postmaster.pid"
    server_pid = pid_file.read_text().splitlines()[0]

    joined = subprocess.run(
        [sys.executable, "-c", START, str(data_dir)], capture_output=True, text=True, timeout=120
    )

    assert joined.stdout.strip() == url
    assert pid_file.read_text().splitlines()[0] == server_pid, "a second server was started"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    holder.communicate("", timeout=60)
    assert not pid_file.exists()


def test_a_failed_start_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    env = {**os.environ, "LEDGER_DATA_DIR": str(blocker / "data")}
    env.pop("DATABASE_URL", None)

    result = _run_cli("db", "current", env=env)

    assert result.returncode == 2
    assert "could not start the embedded PostgreSQL" in result.stderr
    assert "Set DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_external_database_is_a_clear_error() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"}

    result = _run_cli("db", "current", env=env)

    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach the database")
    assert "Traceback" not in result.stderr
