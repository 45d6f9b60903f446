"""Contribution statistics that name no member: the per-day totals beside the members' rows.

`python -m bench.stats [--events N] [--calls K] [--repetitions R]` fills a ledger with
`bench.synthetic` events (a year, 20,000 members), catches up contribution_counts alone,
and times `services.queries.stats.contribution_stats` for a few dashboard questions, each
asked K times in a row from the per-day totals (what the API does now) and from the
members' rows (`by_member`: what it did before), the two taking turns in each repetition
on the same connection. Prints p50 and p99 per side and their ratios (medians of R).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date
from typing import Any

import psycopg

from bench.catchup import filled
from bench.core import Bench, machine, settle
from services.database import with_database
from services.projector.runner import Runner
from services.queries import stats

EVENTS = 1_000_000
CALLS = 50
YEAR = {"since": date(2025, 1, 1), "until": date(2026, 1, 1)}
QUESTIONS: dict[str, dict[str, Any]] = {
    "period=month over a year": {"group_by": [], "period": "month", "filters": {}, **YEAR},
    "group_by=kind&period=week": {
        "group_by": ["kind"],
        "period": "week",
        "filters": {},
        "since": None,
        "until": None,
    },
    "group_by=space, kind=article": {
        "group_by": ["space"],
        "period": None,
        "filters": {"kind": "article"},
        "since": None,
        "until": None,
    },
}
SIDES = {"day totals": False, "members' rows (before)": True}


async def _latencies(
    url: str, question: dict[str, Any], by_member: bool, calls: int
) -> list[float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        found = await stats.contribution_stats(conn, **question, limit=10_000, by_member=by_member)
        assert found, "the question counts something"
        settle()
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            await stats.contribution_stats(conn, **question, limit=10_000, by_member=by_member)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


Figures = dict[tuple[str, str], list[tuple[float, float]]]
"""(question, side): a (p50, p99) in ms per repetition"""


def measure(bench: Bench, events: int, calls: int) -> Figures:
    """Every question asked `calls` times a row from each side, in each repetition."""
    figures: Figures = {}
    with filled(bench, events) as name:
        url = with_database(bench.server_url, name)
        started = time.perf_counter()
        if asyncio.run(Runner(url, ["contribution_counts"]).run()):
            raise RuntimeError("contribution_counts did not catch up")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            rows = [
                (conn.execute(f"SELECT count(*) FROM read.{table}").fetchone() or [0])[0]
                for table in ("contribution_counts", "contribution_day_totals")
            ]
        bench.log(
            f"contribution_counts caught up in {time.perf_counter() - started:.0f} s: "
            f"{rows[0]:,} member rows, {rows[1]:,} day totals"
        )
        for repetition in range(bench.repetitions):
            sides = list(SIDES.items())
            if repetition % 2:
                sides.reverse()
            for question_name, question in QUESTIONS.items():
                for side, by_member in sides:
                    latencies = asyncio.run(_latencies(url, question, by_member, calls))
                    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
                    figures.setdefault((question_name, side), []).append((p50, p99))
                    bench.log(
                        f"#{repetition + 1} {question_name}, {side}: "
                        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS, help=f"ledger size ({EVENTS:,})")
    parser.add_argument(
        "--calls", type=int, default=CALLS, help=f"per side and repetition ({CALLS})"
    )
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    figures = measure(Bench.standalone(args.repetitions), args.events, args.calls)
    print(f"{args.events:,} events, {args.calls} calls per side, medians of {args.repetitions}:")
    for question_name in QUESTIONS:
        now, before = (
            [statistics.median(f[i] for f in figures[(question_name, side)]) for i in (0, 1)]
            for side in SIDES
        )
        print(
            f"  {question_name}: day totals p50 {now[0]:.2f} / p99 {now[1]:.2f} ms; "
            f"members' rows p50 {before[0]:.2f} / p99 {before[1]:.2f} ms; "
            f"p99 before / now {before[1] / now[1]:.1f}x"
        )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
