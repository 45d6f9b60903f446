"""`community-ledger webhooks run [--follow]`: the webhook dispatcher as a job of its own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from services import bootstrap
from services.limit_settings import load_limit_settings
from services.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    master = bootstrap.master_key(settings)
    url = bootstrap.database(settings)
    if args.follow:
        _serve_metrics()

    async def dispatch() -> None:
        async with bootstrap.keyring(url, master) as keyring:
            await bootstrap.dispatcher(url, keyring, settings).run(follow=args.follow)

    asyncio.run(dispatch())
    return 0


def _serve_metrics() -> None:
    """With LEDGER_METRICS_PORT, this process's metrics on that address (loopback unless
    LEDGER_METRICS_ADDRESS says otherwise), as `serve` does."""
    limits = load_limit_settings()
    if limits.metrics_port is None:
        return
    from prometheus_client import start_http_server

    start_http_server(limits.metrics_port, addr=limits.metrics_address)
    print(f"metrics on http://{limits.metrics_address}:{limits.metrics_port}/metrics", flush=True)


def add_commands(commands: Any) -> None:
    group = commands.add_parser("webhooks", help="deliver webhooks (the dispatcher)")
    actions = group.add_subparsers(title="webhooks commands", required=True, metavar="ACTION")
    runner = actions.add_parser(
        "run", help="deliver what is due to every subscription, then stop (or --follow)"
    )
    runner.add_argument("--follow", action="store_true", help="keep running; wake on appends")
    runner.set_defaults(handler=run)
