"""`import jsonl`: idempotent re-runs, rejected lines with their numbers, honest dry runs."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.cli import main
from services.importers.common import Importer, Line, Source, run_import
from services.importers.jsonl import jsonl_source
from services.importers.summary import Summary
from services.items import RegisterMemberItem
from services.store.ledger import Ledger
from tests.store.conftest import count_rows

pytestmark = pytest.mark.anyio

ANA = "github:ana"
BOB = "github:bob"


def write_lines(path: Path, *lines: dict[str, Any] | str) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))  # fmt: skip
    return str(path)


def good_lines() -> list[dict[str, Any]]:
    return [
        {"command": "register_member", "display_name": "Ana", "handles": [ANA]},
        {"command": "register_member", "display_name": "Bob", "handles": [BOB]},
        {"command": "record_contribution", "member": ANA, "kind": "answer", "space": "forum",
         "body": "Try the -z flag", "occurred_at": "2024-03-01T10:00:00Z"},
        {"command": "give_recognition", "from": BOB, "to": ANA, "kind": "thanks"},
    ]  # fmt: skip


async def test_importing_the_same_file_twice_writes_nothing_the_second_time(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "in.jsonl", *good_lines())

    first = await run_import(ledger, jsonl_source(path))
    again = await run_import(ledger, jsonl_source(path))

    assert (first.events_written, first.members_created, first.rejected) == (4, 2, 0)
    assert (again.events_written, again.already_imported, again.replayed_chunks) == (0, 4, 1)
    assert count_rows(database_url) == 4


async def test_a_bad_line_is_rejected_with_its_number_and_the_rest_is_written(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    ana, bob, answer, thanks = good_lines()
    self_thanks = {"command": "give_recognition", "from": ANA, "to": ANA, "kind": "thanks"}
    path = write_lines(tmp_path / "in.jsonl", ana, bob, "", "{not json", {**answer, "colour": 1},
                       self_thanks, answer, thanks)  # fmt: skip

    summary = await run_import(ledger, jsonl_source(path))

    assert summary.read == 7 and summary.rejected == 3
    where = dict(summary.rejections)
    assert list(where) == ["line 4", "line 5", "line 6"]  # the blank line 3 still counts
    assert "malformed" in where["line 4"]
    assert "unknown field `colour`" in where["line 5"]
    assert "cannot recognise themselves" in where["line 6"]
    assert summary.events_written == 4 and count_rows(database_url) == 4
    rerun = await run_import(ledger, jsonl_source(path))
    assert (rerun.events_written, rerun.rejected) == (0, 3) and count_rows(database_url) == 4


async def test_a_dry_run_decides_across_chunks_and_writes_nothing(
    ledger: Ledger, database_url: str, tmp_path: Path
) -> None:
    ana, bob, answer, thanks = good_lines()
    twice = {**ana, "display_name": "Ana again"}  # the handle is claimed by line 1 by then
    path = write_lines(tmp_path / "in.jsonl", ana, bob, answer, thanks, twice)

    dry = await run_import(ledger, jsonl_source(path), dry_run=True, chunk_size=2)

    assert count_rows(database_url) == 0
    assert (dry.dry_run, dry.events_written, dry.members_created) == (True, 4, 2)
    assert [where for where, _ in dry.rejections] == ["line 5"]
    assert "already belongs to member" in dry.rejections[0][1]
    real = await run_import(ledger, jsonl_source(path), chunk_size=2)
    assert (real.events_written, real.members_created, real.rejections) == (
        dry.events_written, dry.members_created, dry.rejections,
    )  # fmt: skip


def test_the_command_prints_a_summary_and_exits_1_when_a_line_was_rejected(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = write_lines(tmp_path / "in.jsonl", *good_lines(), '{"command": "teleport"}')

    dry_status = main(["import", "jsonl", path, "--dry-run"])
    dry_output = capsys.readouterr().out
    status = main(["import", "jsonl", path])
    output = capsys.readouterr().out

    assert dry_status == status == 1
    assert (
        "dry run: nothing was written" in dry_output and "events would be written: 4" in dry_output
    )
    assert "events written: 4" in output and "members created: 2" in output
    assert "line 5: Invalid value 'teleport' - at `$.command`" in output
    assert main(["import", "jsonl", str(tmp_path / "missing.jsonl")]) == 2
    assert count_rows(database_url) == 4


def test_the_command_exits_0_when_every_line_was_imported_blank_lines_included(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = write_lines(tmp_path / "in.jsonl", *good_lines(), "", "  ")

    statuses = main(["import", "jsonl", path, "--dry-run"]), main(["import", "jsonl", path])

    assert statuses == (0, 0)
    assert "rejected: 0" in capsys.readouterr().out and count_rows(database_url) == 4


async def test_an_import_that_breaks_off_says_where_and_a_rerun_resumes(
    ledger: Ledger, database_url: str
) -> None:
    lines = [Line(where=f"line {n}", items=(_member(n),)) for n in range(1, 6)]

    def breaking_off() -> Iterator[Line]:
        yield from lines[:3]
        raise OSError("the disk went away")

    importer = Importer(ledger, Source(kind="jsonl", label="t", unit="lines", lines=breaking_off()),
                        chunk_size=2)  # fmt: skip
    with pytest.raises(OSError):
        await importer.run()

    assert importer.summary.stopped == "after line 3: the disk went away"
    assert "run the same import again to resume" in importer.summary.render()
    assert count_rows(database_url) == 2  # the first chunk; line 3 waited for a full chunk
    resumed = await run_import(ledger, Source(kind="jsonl", label="t", unit="lines", lines=lines),
                               chunk_size=2)  # fmt: skip
    assert (resumed.already_imported, resumed.events_written) == (2, 3)


def _member(n: int) -> RegisterMemberItem:
    return RegisterMemberItem(display_name=f"Member {n}", handles=[f"github:m{n}"])


def test_a_file_that_starts_with_a_byte_order_mark_imports_its_first_line(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + Path(write_lines(path, *good_lines())).read_bytes())

    status = main(["import", "jsonl", str(path)])

    assert status == 0, capsys.readouterr().out
    assert count_rows(database_url) == 4


def test_the_command_keeps_what_it_started_with_out_of_full_collections_while_it_imports(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = write_lines(tmp_path / "in.jsonl", *good_lines())
    frozen: list[int] = []
    run = Importer.run

    async def watched(self: Importer) -> Summary:
        frozen.append(gc.get_freeze_count())
        return await run(self)

    monkeypatch.setattr(Importer, "run", watched)

    assert main(["import", "jsonl", path]) == 0
    assert frozen[0] > 10_000  # the modules of every command, at least
    assert gc.get_freeze_count() == 0
    assert count_rows(database_url) == 4
