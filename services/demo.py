"""`community-ledger demo`: the main job on a fresh machine, in one command.

Migrates the (embedded) database, loads the #kaizenblog example (a second run writes
nothing new), catches the projections up, makes a demo API key, prints how to use it,
then serves the API with the projector running. Ctrl-C stops it all; data stays.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from services import bootstrap, keys
from services.importers.cli import import_from
from services.importers.jsonl import jsonl_source
from services.projector.cli import run_projections
from services.serve import serve_api
from services.settings import Settings

EXAMPLE = Path("examples") / "kaizenblog" / "kaizenblog.jsonl"
RECAP_AUTHOR = "6f4740c3-1781-542f-8a90-203ca23569ad"
"""Who wrote the recap: connector v1 shows whom they reached and recognised, and why."""
HOST = "0e9564d7-0e14-5499-9f2a-bbb844c995ec"
"""The chat's host: her questions (and the answers, replies to them) are contributions;
connector v1 counts whom her questions drew in (`answers_drawn`), answer by answer."""
DEMO_KEY_NAME = "demo"
TRY = (
    "/v1/members/by-handle/twitter/yannr",
    "/v1/members?sort=contributions&limit=5",
    "/v1/stats/contributions?group_by=member&kind=chat_answer",
    "/v1/leaderboards/recognitions_received?window=30d&until=2009-09-01",
    f"/v1/members/{RECAP_AUTHOR}/scores",
    f"/v1/members/{RECAP_AUTHOR}/scores/connector/components/recognitions_given/events?limit=3",
    f"/v1/stats/contributions?group_by=kind&member={HOST}",
    f"/v1/members/{HOST}/scores/connector/components/answers_drawn/events?limit=3",
)
"""The reads the demo suggests; the example is from August 2009, so windows end then."""


def demo(args: argparse.Namespace, settings: Settings) -> int:
    master = bootstrap.master_key(settings)  # with the embedded default, made on first start
    url = bootstrap.database(settings)
    bootstrap.upgrade(url, master, roles=settings.roles)
    example = _example_file()
    print(f"Loading the #kaizenblog example from {example} …", flush=True)
    if import_from(settings, lambda: jsonl_source(str(example))) != 0:
        print("error: the example did not load; see the lines above", flush=True)
        return 1
    if run_projections(settings) != 0:
        return 1
    token = asyncio.run(_fresh_demo_key(url))
    base = f"http://{args.host}:{args.port}"
    auth = f'-H "Authorization: Bearer {token}"'
    tries = "\n".join(f'  curl -s {auth} "{base}{path}"' for path in TRY)
    print(
        f"""
Community Ledger is serving the #kaizenblog community on {base}
  API key (scope write, shown once): {token}
  OpenAPI document: {base}/schema

Try:
{tries}

Ctrl-C stops the server and the embedded PostgreSQL; `make demo` again reuses the data.
""",
        flush=True,
    )
    return serve_api(settings, host=args.host, port=args.port, projector=True, access_log=False)


async def _fresh_demo_key(url: str) -> str:
    """Revoke the previous demo keys (their tokens were shown once and are gone), make one."""
    async with bootstrap.connection(url) as conn:
        for key in await keys.list_keys(conn):
            if key.name == DEMO_KEY_NAME and key.revoked_at is None:
                await keys.revoke_key(conn, str(key.key_id))
        _, token = await keys.create_key(conn, DEMO_KEY_NAME, "write")
    return token


def _example_file() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / EXAMPLE).is_file():
            return root / EXAMPLE
    raise LookupError(f"the example {EXAMPLE} is not here: run the demo from the project folder")


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("demo", help="load the #kaizenblog example and serve it")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.set_defaults(handler=demo)
