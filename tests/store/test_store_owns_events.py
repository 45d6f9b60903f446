"""The store is the one way into `events`, and domain/streams.py the one spelling of its names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("domain", "services", "bench")
STORE = ROOT / "services" / "store"
STREAMS = ROOT / "domain" / "streams.py"

# SQL keywords are upper case in our code; lower case would match prose ("folded from events").
SQL_ON_EVENTS = re.compile(r"\b(FROM|JOIN|INTO|UPDATE)\s+(events|event_tags)\b")


def _sources() -> list[Path]:
    files = sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))
    assert files, f"no Python files found under {ROOT}"
    return files


def _name_prefixes() -> set[str]:
    """Every prefix domain/streams.py spells (`member`, `handle`, …), so a new name is covered."""
    found = set(re.findall(r"f\"(\w+)[-:]\{", STREAMS.read_text(encoding="utf-8")))
    return found | {"member"}


def _offences(pattern: re.Pattern[str], skip: tuple[Path, ...]) -> list[str]:
    offences = []
    for path in _sources():
        if any(path == other or other in path.parents for other in skip):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return offences


def test_only_the_store_runs_sql_on_events_or_event_tags() -> None:
    offences = _offences(SQL_ON_EVENTS, skip=(STORE,))
    assert not offences, "add a function to services/store/ and call it:\n" + "\n".join(offences)


def test_stream_and_tag_names_are_spelled_only_in_domain_streams() -> None:
    prefixes = _name_prefixes()
    assert {"member", "handle", "contribution", "space"} <= prefixes
    spelled = re.compile(rf"""f["'](?:{"|".join(sorted(prefixes))})[-:]\{{""")

    offences = _offences(spelled, skip=(STREAMS,))

    assert not offences, "use domain.streams:\n" + "\n".join(offences)


def test_the_checks_would_catch_what_they_look_for() -> None:
    assert SQL_ON_EVENTS.search("    SELECT count(*) FROM events WHERE stream = %s")
    assert SQL_ON_EVENTS.search("JOIN event_tags t ON t.position = e.position")
    assert not SQL_ON_EVENTS.search("FROM events_archive")
    assert not SQL_ON_EVENTS.search('"""What the rules know about the ledger, folded from events.')
