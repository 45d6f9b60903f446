"""Statistics that name no member read the per-day totals over members: every such query
answers what summing the members' own rows answers (`by_member`, the old way)."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
import pytest

from services import demo
from services.importers.common import run_import
from services.importers.jsonl import jsonl_source
from services.projector.runner import Runner
from services.queries import stats
from services.store.ledger import Ledger
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def test_every_query_without_a_member_sums_to_what_the_members_rows_sum_to(
    ledger: Ledger, api_url: str, projector_url: str
) -> None:
    await run_import(ledger, jsonl_source(str(ROOT / demo.EXAMPLE)))
    assert not await Runner(projector_url).run()
    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT min(day), max(day), min(kind), min(space) FROM read.contribution_counts"
        )
        first, last, kind, space = await cur.fetchone() or (None, None, None, None)
        assert first is not None and first < last, "the example spans several days"
        groupings = [
            list(chosen)
            for size in range(3)
            for chosen in itertools.combinations(["kind", "space"], size)
        ]
        filters: list[dict[str, str | UUID]] = [{}, {"kind": kind}, {"space": space}]
        spans: list[tuple[date | None, date | None]] = [(None, None), (first, last)]
        asked = 0
        for group_by, period, where, (since, until) in itertools.product(
            groupings, [None, "day", "week", "month"], filters, spans
        ):
            query: dict[str, Any] = {
                "group_by": group_by,
                "period": period,
                "since": since,
                "until": until,
                "filters": where,
                "limit": 1_000,
            }
            from_totals = await stats.contribution_stats(conn, **query)
            from_members = await stats.contribution_stats(conn, **query, by_member=True)
            assert from_totals == from_members, query
            asked += bool(from_totals)
        assert asked > 40, "most combinations count something"


async def test_a_live_build_from_before_the_totals_answers_from_its_members_rows(
    ledger: Ledger, database_url: str, api_url: str, projector_url: str
) -> None:
    """Right after an upgrade, the live contribution_counts build (version 2) has no day
    totals until its rebuild goes live: the statistics still answer, from its rows."""
    await run_import(ledger, jsonl_source(str(ROOT / demo.EXAMPLE)))
    assert not await Runner(projector_url).run()
    query: dict[str, Any] = {
        "group_by": ["kind"],
        "period": "month",
        "since": None,
        "until": None,
        "filters": {},
        "limit": 1_000,
    }
    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as conn:
        expected = await stats.contribution_stats(conn, **query, by_member=True)
        with psycopg.connect(database_url, autocommit=True) as owner:
            owner.execute("DROP VIEW read.contribution_day_totals")
        assert expected and await stats.contribution_stats(conn, **query) == expected
        async with conn.transaction():  # in a transaction the failed read cannot be mended
            with pytest.raises(psycopg.errors.UndefinedTable):
                await stats.contribution_stats(conn, **query)
