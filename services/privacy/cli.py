"""`community-ledger keys new-master|rotate-master`: the master key's commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from services import bootstrap
from services.privacy.master import (
    EMBEDDED_KEY_FILE,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE_ENV,
    MasterKey,
    MasterKeyError,
    new_master_key,
    parse_master_key,
    read_key_file,
    write_key_file,
)
from services.privacy.rotation import rotate_master
from services.settings import Settings

NEW_MASTER_KEY_ENV = "LEDGER_NEW_MASTER_KEY"


def new_master(args: argparse.Namespace, settings: Settings) -> int:
    key = new_master_key()
    if args.output is None:
        print(key.encoded())
        return 0
    if not write_key_file(Path(args.output), key):
        raise MasterKeyError(f"{args.output} exists: a key file is never overwritten")
    print(f"wrote master key {key.kek_id} to {args.output} (mode 0600)", file=sys.stderr)
    return 0


def rotate(args: argparse.Namespace, settings: Settings) -> int:
    old = bootstrap.master_key(settings)
    new = _new_key(args)
    url = bootstrap.database(settings)
    embedded_file = _embedded_key_file(settings)
    staged = embedded_file.with_name(embedded_file.name + ".new") if embedded_file else None
    if staged is not None:
        # Staged before the rotation commits, so the new key is on disk whatever happens.
        staged.unlink(missing_ok=True)
        write_key_file(staged, new)

    async def go() -> Any:
        async with bootstrap.connection(url) as conn:
            return await rotate_master(conn, old, new)

    try:
        rotated = asyncio.run(go())
    except BaseException:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    print(
        f"re-wrapped {rotated.keys} member keys, {rotated.secrets} secrets and "
        f"{rotated.webhook_secrets} webhook secrets: "
        f"master key {old.kek_id} -> {new.kek_id}; no event was touched"
    )
    if staged is not None and embedded_file is not None:
        os.replace(staged, embedded_file)
        print(f"{embedded_file} now holds the new master key")
    else:
        print(
            f"now give every process the new key ({MASTER_KEY_ENV} or {MASTER_KEY_FILE_ENV}) "
            "and restart them: until then they cannot make keys for new members"
        )
    return 0


def _new_key(args: argparse.Namespace) -> MasterKey:
    if args.new_key_file and os.environ.get(NEW_MASTER_KEY_ENV):
        raise MasterKeyError(f"give --new-key-file or {NEW_MASTER_KEY_ENV}, not both")
    if args.new_key_file:
        return read_key_file(Path(args.new_key_file))
    if text := os.environ.get(NEW_MASTER_KEY_ENV):
        return parse_master_key(text, source=NEW_MASTER_KEY_ENV)
    raise MasterKeyError(
        f"no new master key: give --new-key-file FILE or set {NEW_MASTER_KEY_ENV} "
        "(make one with `community-ledger keys new-master`)"
    )


def _embedded_key_file(settings: Settings) -> Path | None:
    """The key file made for the embedded database, when that is where the key came from."""
    if os.environ.get(MASTER_KEY_ENV) or os.environ.get(MASTER_KEY_FILE_ENV):
        return None
    return settings.data_dir / EMBEDDED_KEY_FILE if settings.uses_embedded_database else None


def add_commands(actions: Any) -> None:
    """Added to the `keys` group (services/keys_cli.py)."""
    maker = actions.add_parser("new-master", help="print a fresh master key (KEK)")
    maker.add_argument("--output", "-o", metavar="FILE", help="write it to FILE (mode 0600)")
    maker.set_defaults(handler=new_master)

    rotator = actions.add_parser(
        "rotate-master",
        help="re-wrap every data key under a new master key, in one transaction",
        description="The current key comes from LEDGER_MASTER_KEY, LEDGER_MASTER_KEY_FILE or "
        "the embedded data folder's master.key; the new one from --new-key-file or "
        f"{NEW_MASTER_KEY_ENV}. With the embedded default, master.key is replaced.",
    )
    rotator.add_argument("--new-key-file", metavar="FILE", help="the new master key's file")
    rotator.set_defaults(handler=rotate)
