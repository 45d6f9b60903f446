"""`community-ledger import jsonl|csv|git …` and `community-ledger export jsonl`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services import bootstrap
from services.importers.common import CHUNK_SIZE, Importer, Source
from services.importers.csv import CsvOptions, csv_source
from services.importers.export import export_jsonl
from services.importers.git import git_source
from services.importers.jsonl import jsonl_source
from services.importers.progress import Progress
from services.importers.summary import Summary
from services.settings import Settings


def import_jsonl(args: argparse.Namespace, settings: Settings) -> int:
    return _import(args, settings, lambda: jsonl_source(args.file))


def import_csv(args: argparse.Namespace, settings: Settings) -> int:
    columns: dict[str, str] = {}
    for pair in args.column:
        name, equals, header = pair.partition("=")
        if not equals or not name.strip() or not header.strip():
            raise LookupError(f"--column {pair!r}: write it as NAME=HEADER, e.g. handle=Twitter")
        columns[name.strip()] = header.strip()
    options = CsvOptions(columns=columns, kind=args.kind, space=args.space,
                         platform=args.platform, delimiter=args.delimiter)  # fmt: skip
    return _import(args, settings, lambda: csv_source(args.file, options))


def import_git(args: argparse.Namespace, settings: Settings) -> int:
    return _import(args, settings, lambda: git_source(args.path, args.space))


def _import(args: argparse.Namespace, settings: Settings, open_source: Callable[[], Source]) -> int:
    return import_from(settings, open_source, dry_run=args.dry_run, chunk_size=args.chunk_size)


IMPORT_CIPHERS = 256
"""AES-GCM objects an import keeps (Keyring.keep_ciphers): a chunk's most active writers."""


def import_from(
    settings: Settings,
    open_source: Callable[[], Source],
    *,
    dry_run: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Import a source through the one write path; print its summary; answer the exit status."""
    source = open_source()  # a missing file is an error before touching the database
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    progress = Progress.for_terminal(source.label, source.total, source.unit)
    summaries: list[Summary] = []

    async def run() -> None:
        url = bootstrap.database(settings)
        async with bootstrap.write_path(url, pool_size=2, dry_run=dry_run) as wired:
            importer = Importer(wired.ledger, source, dry_run=dry_run, handler=wired.handler,
                                chunk_size=chunk_size, progress=progress)  # fmt: skip
            summaries.append(importer.summary)
            # An import's members are spread over its whole source: a cipher kept for each
            # would be rebuilt seldom (~2 us) and cost ~11 MiB at the default bound.
            wired.keyring.keep_ciphers(IMPORT_CIPHERS)
            # What the process holds once started (the modules of every command: ~110,000
            # tracked objects) is left out of the garbage collector's full collections,
            # which the chunks' short-lived objects set off every few chunks: each scanned
            # it all again (~0.1 s), a cost that grew with every module the CLI imports.
            gc.freeze()
            try:
                await importer.run()
            finally:
                gc.unfreeze()

    try:
        asyncio.run(run())
    finally:
        for summary in summaries:  # printed even when the import stopped half-way
            print(summary.render())
    return summaries[0].exit_status


def export(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        async with bootstrap.write_path(bootstrap.database(settings), pool_size=2) as wired:
            if args.output == "-":
                return await export_jsonl(wired.ledger, sys.stdout.buffer)
            with Path(args.output).open("wb") as output:
                return await export_jsonl(wired.ledger, output)

    count = asyncio.run(run())
    if args.output != "-":
        print(f"exported {count:,} events to {args.output}", file=sys.stderr)
    return 0


def add_commands(commands: Any) -> None:
    group = commands.add_parser("import", help="bring history in: JSONL, CSV, a Git repository")
    kinds = group.add_subparsers(title="import commands", required=True, metavar="FORMAT")

    jsonl = kinds.add_parser("jsonl", help="one batch item per line (the POST /v1/batch shapes)")
    jsonl.add_argument("file", metavar="FILE", help="a .jsonl file, or - for standard input")
    _common(jsonl, import_jsonl)

    csv = kinds.add_parser("csv", help="contributions from a spreadsheet, one row each")
    csv.add_argument("file", metavar="FILE")
    csv.add_argument("--column", action="append", default=[], metavar="NAME=HEADER",
                     help="read field NAME (occurred_at, handle, display_name, kind, space, "
                          "title, url, text) from the column headed HEADER")  # fmt: skip
    csv.add_argument("--kind", help="the kind for rows without one, e.g. chat_answer")
    csv.add_argument("--space", help="the space for rows without one, e.g. kaizenblog")
    csv.add_argument("--platform", help="for handles written without one, e.g. twitter")
    csv.add_argument("--delimiter", default=",", help="the cell separator (default ,)")
    _common(csv, import_csv)

    git = kinds.add_parser("git", help="a repository's commits and their trailers")
    git.add_argument("path", metavar="PATH", help="a clone (any folder inside it)")
    git.add_argument("--space", help="the space (default: the repository's folder name)")
    _common(git, import_git)

    exporter = commands.add_parser("export", help="write the whole ledger out")
    formats = exporter.add_subparsers(title="export formats", required=True, metavar="FORMAT")
    jsonl_out = formats.add_parser("jsonl", help="batch items that `import jsonl` takes back")
    jsonl_out.add_argument("--output", "-o", default="-", metavar="FILE",
                           help="where to write (default: standard output)")  # fmt: skip
    jsonl_out.set_defaults(handler=export)


def _common(parser: argparse.ArgumentParser, handler: Callable[..., int]) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="decide all by the rules and report; write nothing")  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, metavar="N",
                        help=f"items per atomic append (default {CHUNK_SIZE})")  # fmt: skip
    parser.set_defaults(handler=handler)
