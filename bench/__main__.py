"""Benchmarks side by side: `python -m bench [WORKLOAD…] [--quick] [--json FILE]`.

Starts (or joins) the embedded PostgreSQL unless DATABASE_URL names a server; every
workload gets fresh databases on that one server, runs several times, and the table at
the end gives median, min and max per figure, then every ratio with its target.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.core import Bench, Ratio, Result, machine, server_version
from services.embedded_db import embedded_server_url
from services.privacy.master import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, new_master_key
from services.settings import load_settings

WORKLOADS = {
    "appends": "single-event appends, 1 and 8 writers: ours, eventsourcing, plain inserts",
    "batches": "batch appends of 1,000 events: ours, eventsourcing, executemany, COPY",
    "catchup": "projection catch-up from zero over 1,000,000 events, and its memory",
    "imports": "import jsonl of 100,000 and 1,000,000 lines: rate and memory",
    "http": "POST /v1/contributions, GET history and GET /health at 64 connections",
    "history": "member history pages (first and deep) on a 1,000,000-event ledger",
    "graph": "the connector score's graph job, whole and betweenness alone, at 200,000 connections",
    "webhooks": "webhook deliveries/s to a receiver answering at once, and to a 200 ms one",
    "sse": "event stream delivery latency: 200 streams while 1,000 events/s are appended",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help=f"some of: {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument("--repetitions", type=int, default=3, help="runs per figure (3)")
    parser.add_argument("--quick", action="store_true", help="sizes ten times smaller: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    chosen = args.workloads or list(WORKLOADS)

    console = Console(highlight=False)
    settings = load_settings()
    if not (os.environ.get(MASTER_KEY_ENV) or os.environ.get(MASTER_KEY_FILE_ENV)):
        # Every database here is fresh and dropped after: a throwaway master key, shared
        # with the servers and importers the workloads start as child processes.
        os.environ[MASTER_KEY_ENV] = new_master_key().encoded()
    server = settings.database_url or embedded_server_url(settings.data_dir)
    bench = Bench(
        server_url=server,
        repetitions=args.repetitions,
        scale=0.1 if args.quick else 1.0,
        log=lambda line: console.print(f"  {line}", markup=False),
    )
    where = f"{machine()}; {server_version(server)}"
    console.print(f"[bold]bench[/] on {where}; {args.repetitions} repetitions each")

    results: list[Result] = []
    ratios: list[Ratio] = []
    for name in chosen:
        console.print(f"[bold]== {name}[/]: {WORKLOADS[name]}")
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        for item in module.run(bench):
            (ratios if isinstance(item, Ratio) else results).append(item)
        console.print(f"  ({time.perf_counter() - started:.0f} s)")

    console.print(_results_table(results))
    console.print(_ratios_table(ratios))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": where,
                    "repetitions": args.repetitions,
                    "quick": args.quick,
                    "results": [r.as_json() for r in results],
                    "ratios": [r.as_json() for r in ratios],
                },
                indent=2,
            )
            + "\n"
        )
        console.print(f"written to {args.json}")
    return 0


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _results_table(results: list[Result]) -> Table:
    table = Table(title="figures (median of the repetitions)")
    for column in ("workload", "variant", "median", "min", "max", "unit", "reps"):
        table.add_column(column, justify="right" if column in {"median", "min", "max"} else "left")
    for r in results:
        table.add_row(
            r.workload,
            r.variant,
            _figure(r.median),
            _figure(min(r.samples)),
            _figure(max(r.samples)),
            r.unit,
            str(len(r.samples)),
        )
    return table


def _ratios_table(ratios: list[Ratio]) -> Table:
    table = Table(title="ratios and targets (same run)")
    for column in ("ratio", "value", "target", "met"):
        table.add_column(column, justify="right" if column in {"value", "target"} else "left")
    for r in ratios:
        target = "" if r.target is None else ("≤ " if r.at_most else "≥ ") + _figure(r.target)
        met = {None: "", True: "[green]yes[/]", False: "[red]no[/]"}[r.met]
        table.add_row(r.name, _figure(r.value), target, met)
    return table


if __name__ == "__main__":
    sys.exit(main())
