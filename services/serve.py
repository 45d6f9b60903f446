"""`community-ledger serve`: the API under uvicorn, migrated first."""

from __future__ import annotations

import argparse
import os
from typing import Any

from services import migrate
from services.database import database_url
from services.settings import Settings, load_settings


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    url = database_url(settings)
    migrate.upgrade(url, app_role=settings.app_role)
    # Worker processes rebuild the app from this variable; the embedded server is shared.
    os.environ["LEDGER_RESOLVED_DATABASE_URL"] = url
    print(f"Community Ledger API on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        "services.serve:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def app_from_environment() -> Any:
    from services.api.app import create_app

    url = os.environ.get("LEDGER_RESOLVED_DATABASE_URL") or database_url(load_settings())
    return create_app(url)


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("serve", help="serve the HTTP API")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(handler=serve)
