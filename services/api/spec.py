"""The committed OpenAPI document (`api-spec/openapi.json`), generated from the app."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.settings import Settings

SPEC_PATH = Path("api-spec") / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json; building it needs no database."""
    from services.api.app import create_app

    schema: dict[str, Any] = create_app("postgresql://unused").openapi_schema.to_schema()
    return schema


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_spec(args: argparse.Namespace, settings: Settings) -> int:
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render())
    print(f"wrote {output}")
    return 0


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("api-spec", help="write the OpenAPI document of the API")
    parser.add_argument("--output", default=str(SPEC_PATH))
    parser.set_defaults(handler=write_spec)
