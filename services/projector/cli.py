"""`community-ledger projections run|rebuild|status`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from services import bootstrap
from services.projector.runner import BATCH_SIZE
from services.projector.status import projection_statuses
from services.settings import Settings

WAIT_SECONDS = 15.0
"""How long a run waits for a projection another runner holds."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_projections(
        settings,
        args.names,
        follow=args.follow,
        rebuild=getattr(args, "rebuild", ()),
        batch_size=args.batch_size,
        wait_seconds=args.wait,
    )


def run_projections(
    settings: Settings,
    names: Sequence[str] = (),
    *,
    follow: bool = False,
    rebuild: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
    wait_seconds: float = WAIT_SECONDS,
) -> int:
    """Catch the projections up (and with `follow`, keep them up); 1 if any stopped."""
    _log_to_stderr()
    master = bootstrap.master_key(settings)
    url = bootstrap.database(settings)

    async def project() -> list[str]:
        async with bootstrap.keyring(url, master) as keyring:
            runner = bootstrap.runner(
                url, names, batch_size=batch_size, rebuild=rebuild, keyring=keyring
            )
            return await runner.run(follow=follow, wait_seconds=wait_seconds)

    failures = asyncio.run(project())
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    args.rebuild = args.names
    return run(args, settings)


def status(args: argparse.Namespace, settings: Settings) -> int:
    async def fetch() -> list[Any]:
        async with bootstrap.connection(bootstrap.database(settings)) as conn:
            return await projection_statuses(conn)

    statuses = asyncio.run(fetch())
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(statuses)).decode())
        return 0
    header = f"{'projection':<22}{'version':>8}{'checkpoint':>12}{'head':>10}{'lag':>8}"
    print(f"{header}{'lag s':>9}  {'state':<11}owner")
    for s in statuses:
        print(
            f"{s.name:<22}{s.version:>8}{s.checkpoint:>12}{s.head:>10}{s.lag_events:>8}"
            f"{s.lag_seconds:>9.1f}  {s.state:<11}{s.owner or '-'}"
        )
        if s.rebuild_position is not None:
            print(f"{'':<22}rebuilding: at position {s.rebuild_position}")
        if s.error:
            print(f"{'':<22}error: {s.error}")
    return 0


def _log_to_stderr() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )


def add_commands(commands: Any) -> None:
    group = commands.add_parser("projections", help="run, rebuild and inspect projections")
    actions = group.add_subparsers(title="projections commands", required=True, metavar="ACTION")

    runner = actions.add_parser("run", help="catch projections up to the head of the ledger")
    runner.add_argument("names", nargs="*", metavar="NAME", help="projections (default: all)")
    runner.add_argument("--follow", action="store_true", help="keep running; wake on appends")
    _tuning(runner)
    runner.set_defaults(handler=run)

    rebuilder = actions.add_parser("rebuild", help="rebuild into fresh tables, then swap")
    rebuilder.add_argument(
        "names", nargs="+", metavar="NAME", help="projections, rebuilt together in one pass"
    )
    rebuilder.add_argument("--follow", action="store_true", help="keep running afterwards")
    _tuning(rebuilder)
    rebuilder.set_defaults(handler=rebuild)

    shower = actions.add_parser("status", help="checkpoint, lag and state of each projection")
    shower.add_argument("--json", action="store_true", help="as JSON")
    shower.set_defaults(handler=status)


def _tuning(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--wait",
        type=float,
        default=WAIT_SECONDS,
        metavar="SECONDS",
        help="how long to wait for a projection another runner holds",
    )
