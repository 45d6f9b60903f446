"""`community-ledger keys create|list|revoke`: API keys for the HTTP API (and the master key's
commands, from services/privacy/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import psycopg
from psycopg import AsyncConnection

from services import bootstrap, keys
from services.privacy import cli as privacy_cli
from services.settings import Settings

T = TypeVar("T")


def create(args: argparse.Namespace, settings: Settings) -> int:
    key, token = _run(settings, lambda conn: keys.create_key(conn, args.name, args.scope))
    if args.json:
        shown = {"key_id": key.key_id, "name": key.name, "scope": key.scope, "token": token}
        print(msgspec.json.encode(shown).decode())
        return 0
    # Only the token goes to stdout, so `TOKEN=$(community-ledger keys create …)` works.
    print(f"created API key {key.key_id} ({key.name}, scope {key.scope}):", file=sys.stderr)
    print(token)
    print(
        "this token cannot be shown again: store it now, and send it as "
        "`Authorization: Bearer <token>`",
        file=sys.stderr,
    )
    return 0


def list_(args: argparse.Namespace, settings: Settings) -> int:
    found = _run(settings, keys.list_keys)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(found)).decode())
        return 0
    if not found:
        print(
            "no API keys yet; create one with `community-ledger keys create --name NAME "
            "--scope read`"
        )
        return 0
    print(
        f"{'key id':<38}{'prefix':<13}{'scope':<7}{'created (UTC)':<18}"
        f"{'last used (UTC)':<18}{'state':<9}name"
    )
    for key in found:
        state = "active" if key.revoked_at is None else "revoked"
        created, used = _when(key.created_at), _when(key.last_used_at)
        print(
            f"{key.key_id!s:<38}{keys.MARKER + key.prefix:<13}{key.scope:<7}"
            f"{created:<18}{used:<18}{state:<9}{key.name}"
        )
    return 0


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    from services.api.auth import CACHE_SECONDS

    key = _run(settings, lambda conn: keys.revoke_key(conn, args.key))
    assert key.revoked_at is not None
    print(
        f"revoked API key {key.key_id} ({keys.MARKER}{key.prefix}, {key.name}) at "
        f"{_when(key.revoked_at)} UTC; running servers refuse it within "
        f"{CACHE_SECONDS:g} s"
    )
    if keys.is_token(args.key):
        print(
            "note: next time revoke by the key id or prefix (`keys list` shows both): a whole "
            "token on a command line stays in shell history and process listings",
            file=sys.stderr,
        )
    return 0


def _run(settings: Settings, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    async def go() -> T:
        async with bootstrap.connection(bootstrap.database(settings)) as conn:
            return await work(conn)

    try:
        return asyncio.run(go())
    except psycopg.errors.UndefinedTable:
        raise LookupError(
            "the database has no api_keys table: run `community-ledger db upgrade` first"
        ) from None


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if at else "-"


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("say who or what uses the key, e.g. --name chat-bot")
    return text.strip()


def add_commands(commands: Any) -> None:
    group = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = group.add_subparsers(title="keys commands", required=True, metavar="ACTION")

    creator = actions.add_parser("create", help="create a key; its token is shown only once")
    creator.add_argument("--name", required=True, type=_name, help="who or what uses the key")
    creator.add_argument(
        "--scope",
        required=True,
        choices=keys.SCOPES,
        help="read < write < admin; each includes the ones before it",
    )
    creator.add_argument("--json", action="store_true", help="as JSON, token included")
    creator.set_defaults(handler=create)

    lister = actions.add_parser("list", help="every key, without its token")
    lister.add_argument("--json", action="store_true", help="as JSON")
    lister.set_defaults(handler=list_)

    revoker = actions.add_parser("revoke", help="revoke a key; servers refuse it within seconds")
    revoker.add_argument(
        "key",
        metavar="KEY_ID_OR_PREFIX",
        help="the key id, or the prefix `keys list` shows (a leaked whole token works too, "
        "but keep tokens off command lines)",
    )
    revoker.set_defaults(handler=revoke)

    privacy_cli.add_commands(actions)
