"""What psql shows of `ledger_append` reads on its own: names, not numbers, and the phases
numbered as docs/ledger.md numbers them."""

from __future__ import annotations

import re

import psycopg
from psycopg.types.json import Jsonb

from services.store import ledger
from tests.conftest import ROOT, Clones

MIGRATIONS = ROOT / "migrations" / "versions"
LEDGER_DOC = ROOT / "docs" / "ledger.md"


def _definition(url: str, function: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_get_functiondef(%s::regproc)", [function]).fetchone()
    assert row is not None
    return str(row[0])


def _appending_section() -> str:
    text = LEDGER_DOC.read_text(encoding="utf-8")
    return text.split("## Appending", 1)[1].split("\n## ", 1)[0]


def _documented_phases() -> list[tuple[str, str]]:
    return re.findall(r"^(\d+)\. \*\*(.+?)\*\*", _appending_section(), re.MULTILINE)


def test_ledger_append_shows_no_lock_keys_or_masks_as_numbers(database_url: str) -> None:
    definition = _definition(database_url, "ledger_append")

    assert re.findall(r"7031\d*", definition) == []
    assert re.findall(r"&\s*\d+", definition) == []
    for name in ("ledger_ordering_lock_key()", "ledger_sequencer_lock_key()"):
        assert name in definition
    assert "ledger_tag_lock_class()" in definition
    assert "c_tag_bucket_mask" in definition


def test_ledger_append_marks_every_phase_docs_ledger_md_numbers_in_order(
    database_url: str,
) -> None:
    phases = _documented_phases()
    definition = _definition(database_url, "ledger_append")

    assert [number for number, _ in phases] == [str(n) for n in range(1, len(phases) + 1)]
    assert len(phases) >= 6, phases
    offsets = {
        f"-- {number}. {title}:": definition.find(f"-- {number}. {title}:")
        for number, title in phases
    }
    assert [mark for mark, offset in offsets.items() if offset < 0] == []
    assert list(offsets.values()) == sorted(offsets.values())


def test_ledger_append_locals_are_prefixed_and_no_variable_conflict_is_set(
    database_url: str,
) -> None:
    definition = _definition(database_url, "ledger_append")
    declare = re.search(r"^DECLARE$(.*?)^BEGIN$", definition, re.MULTILINE | re.DOTALL)

    assert re.search(r"^\s*#variable_conflict", definition, re.MULTILINE) is None
    assert declare is not None
    names = re.findall(r"^\s+(\w+)\s", declare.group(1), re.MULTILINE)
    assert len(names) > 5, names
    assert [name for name in names if not name.startswith(("v_", "c_"))] == []


def test_the_append_and_the_horizon_name_one_shared_ordering_lock_key(database_url: str) -> None:
    horizon = _definition(database_url, "ledger_horizon")

    assert "ledger_ordering_lock_key()" in horizon
    assert "ledger_ordering_lock_key()" in _definition(database_url, "ledger_append")
    assert re.findall(r"7031\d*", horizon) == []
    assert "ledger_horizon()" in _definition(database_url, "ledger_head")


def test_the_horizon_stops_at_an_append_in_flight_found_by_the_named_key(
    database_url: str, clones: Clones
) -> None:
    event = {
        "event_id": "7b0e4c52-0d0a-4f7e-9a51-3c1e6f0d2a11",
        "type": "Noted",
        "data": {},
        "stream": "horizon-test",
        "occurred_at": "2026-12-03T00:00:00Z",
    }
    # An older transaction in flight anywhere on the server (the next test's clone being
    # made, another test worker's) lowers the snapshot's xmax below this append's xid: the
    # horizon is then lower still. So it never passes the append, and it equals the
    # append's xid on a try when nothing older was in flight.
    clones.settle()
    exact = 0
    for _ in range(ATTEMPTS):
        with (
            psycopg.connect(database_url) as appending,
            psycopg.connect(database_url, autocommit=True) as reading,
        ):
            appending.execute("SELECT * FROM ledger_append(%s::jsonb)", [Jsonb([event])])
            row = appending.execute("SELECT pg_current_xact_id()::text").fetchone()
            horizon = reading.execute("SELECT ledger_horizon()::text").fetchone()
            head = reading.execute("SELECT ledger_head()").fetchone()
            appending.rollback()
            after = reading.execute("SELECT ledger_horizon()::text").fetchone()

        assert row is not None and horizon is not None and after is not None
        assert int(horizon[0]) <= int(row[0])
        assert head == (0,)
        if horizon[0] == row[0] and int(after[0]) > int(row[0]):
            exact += 1
            break
    assert exact == 1, "the horizon never reached the append in flight"


ATTEMPTS = 50
"""Tries for a moment with no older transaction in flight on the server."""


def test_the_store_and_the_docs_name_the_migration_that_defines_ledger_append_now() -> None:
    newest = max(
        path.name
        for path in MIGRATIONS.glob("0*.py")
        if "FUNCTION ledger_append(" in path.read_text(encoding="utf-8")
    )
    current = f"migrations/versions/{newest}"

    assert ledger.__doc__ is not None
    assert current in " ".join(ledger.__doc__.split())
    assert current in _appending_section()
