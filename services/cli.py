"""The `community-ledger` command: one entry point for operators and jobs."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import psycopg

from domain.errors import LedgerError
from services import bootstrap, demo, keys_cli, migrate, serve
from services.api import spec
from services.database import masked
from services.embedded_db import EmbeddedDatabaseError
from services.importers import cli as importers_cli
from services.privacy.master import MasterKeyError
from services.projector import cli as projector_cli
from services.settings import Settings, SettingsError
from services.store.privileges import RolesError
from services.webhooks import cli as webhooks_cli

Handler = Callable[[argparse.Namespace, Settings], int]


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    master = bootstrap.master_key(settings)
    url = bootstrap.database(settings)
    bootstrap.upgrade(url, master, revision=args.revision, roles=settings.roles)
    print(f"database at revision {migrate.current_revision(url)}")
    return 0


def db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = bootstrap.database(settings)
    migrate.downgrade(url, args.revision)
    print(f"database at revision {migrate.current_revision(url) or 'base (empty)'}")
    return 0


def db_current(args: argparse.Namespace, settings: Settings) -> int:
    url = bootstrap.database(settings)
    current = migrate.current_revision(url)
    head = migrate.head_revision()
    state = "at head" if current == head else f"behind head {head}"
    print(f"{current or 'base (empty)'} ({state})")
    return 0


def db_url(args: argparse.Namespace, settings: Settings) -> int:
    """The password masked unless asked for: terminals, CI logs and screenshots keep output."""
    url = bootstrap.database(settings)
    print(url if args.show_password else masked(url))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="community-ledger",
        description="An event-sourced record of the work that holds a community together.",
        epilog="DATABASE_URL selects an external PostgreSQL; without it an embedded one "
        "runs under LEDGER_DATA_DIR (default ./.ledger).",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="schema migrations").add_subparsers(
        title="db commands", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser("upgrade", help="migrate the schema up (to head by default)")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(handler=db_upgrade)
    downgrade = db.add_parser("downgrade", help="migrate the schema down (to empty by default)")
    downgrade.add_argument("--revision", default="base")
    downgrade.set_defaults(handler=db_downgrade)
    db.add_parser("current", help="show the schema's revision").set_defaults(handler=db_current)
    url = db.add_parser("url", help="print the database URL in use, its password masked")
    url.add_argument(
        "--show-password", action="store_true", help="print the password too (for scripts)"
    )
    url.set_defaults(handler=db_url)

    demo.add_commands(commands)
    serve.add_commands(commands)
    projector_cli.add_commands(commands)
    spec.add_commands(commands)
    keys_cli.add_commands(commands)
    importers_cli.add_commands(commands)
    webhooks_cli.add_commands(commands)
    return parser


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so `finally` and atexit hooks run.

    SIGTERM's default action kills the process on the spot: the atexit hook that stops
    the embedded PostgreSQL never runs and the server outlives us (`timeout`, systemd,
    CI runners and make all stop a process this way). uvicorn captures SIGTERM while it
    serves and raises it again after its graceful shutdown, which lands here too.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    exit_on_sigterm()
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, bootstrap.settings())
    except (
        LedgerError,
        EmbeddedDatabaseError,
        MasterKeyError,
        LookupError,
        SettingsError,
        RolesError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except psycopg.errors.InsufficientPrivilege as error:
        # A restricted role running an owner's command (`keys create` as the API's role).
        print(
            f"error: the database refused: {error.diag.message_primary}; run this command "
            "as the database's owner",
            file=sys.stderr,
        )
        return 2
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction):
        # A database `db upgrade` has not yet made (or not to this code's revision).
        print(
            "error: the database holds no ledger, or an older one: run "
            "`community-ledger db upgrade` first",
            file=sys.stderr,
        )
        return 2
    except psycopg.OperationalError as error:
        print(f"error: cannot reach the database: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
