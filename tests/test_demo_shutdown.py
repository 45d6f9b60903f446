"""SIGTERM (from `timeout`, systemd, a CI runner or make) stops the demo as Ctrl-C does.

Each test runs the real thing in its own session, with its own data folder and port,
and asserts that the process, the port and the embedded PostgreSQL are all gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 180
SHUTDOWN_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _is_gone(pid: int) -> bool:
    """Dead, or a zombie nobody reaped yet (a container's init may be slow to)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, and run by the unprivileged user the embedded server uses as root
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def _started(command: list[str], data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """Start `command` in a session of its own; whatever the test does, nothing outlives it."""
    env = {**os.environ, "LEDGER_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output, _ = process.communicate(timeout=SHUTDOWN_SECONDS)
                pytest.fail(f"{command[0]} did not start serving on {port}:\n{output}")
            time.sleep(0.2)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SHUTDOWN_SECONDS)
        _stop_a_leftover_server(data_dir / "postgres")


def _stop_a_leftover_server(pgdata: Path) -> None:
    """So a failing test does not leave a server behind for the next one to trip on."""
    pid_file = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGQUIT)


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SHUTDOWN_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what} after {SHUTDOWN_SECONDS} s"
        time.sleep(0.2)


def _assert_all_stopped(process: subprocess.Popen[str], data_dir: Path, port: int) -> str:
    server_pid = _postmaster_pid(data_dir)
    try:
        output, _ = process.communicate(timeout=SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {SHUTDOWN_SECONDS} s after SIGTERM")
    _wait_for(lambda: _group_is_gone(process.pid), "a process of the demo still runs")
    assert not _answers(port), f"port {port} still answers"
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), (
        f"the embedded PostgreSQL was left running:\n{output}"
    )
    _wait_for(lambda: _is_gone(server_pid), f"the postmaster {server_pid} still runs")
    return output


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_sigterm_stops_the_server_and_the_embedded_postgres(command: str, tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    cli = [str(BIN / "community-ledger"), command, "--port", str(port)]
    with _started(cli, data_dir, port) as process:
        process.send_signal(signal.SIGTERM)

        output = _assert_all_stopped(process, data_dir, port)

        assert process.returncode == 128 + signal.SIGTERM, output
        assert "Traceback" not in output


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_sigterm_to_make_alone_stops_make_demo_and_everything_it_started(tmp_path: Path) -> None:
    # As `timeout make demo` does: the signal goes to make, not to its process group.
    data_dir, port = tmp_path / "data", _free_port()
    make = ["make", "-o", ".venv/.installed", "demo", f"DEMO_PORT={port}", f"BIN={BIN}"]
    with _started(make, data_dir, port) as process:
        process.send_signal(signal.SIGTERM)

        output = _assert_all_stopped(process, data_dir, port)

        assert "Traceback" not in output
