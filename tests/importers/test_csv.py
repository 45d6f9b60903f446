"""`import csv`: columns mapped to fields, unknown handles registered, bad rows named by line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain import commands as c
from domain.events import ContributionRecorded, MemberRegistered
from domain.ids import new_id
from services.cli import main
from services.handler import CommandHandler, execute_commands
from services.importers.common import UnreadableSource, run_import
from services.importers.csv import CsvOptions, csv_source
from services.store.ledger import Ledger
from tests.importers.conftest import all_events

pytestmark = pytest.mark.anyio

TRANSCRIPT = """\
When,Twitter,Name,Tweet,Question
2009-08-23T23:02:00Z,@Note_To_CMO,Stephen Denny,Connections are shortcuts.,Q1
2009-08-23 23:05,CASUDI,,"contributing/communicating
U name it",Q2
2009-08-23,@Note_To_CMO,Stephen Denny,A second thought,Q3
,,Nobody,No handle here,Q4
"""

MAPPED = CsvOptions(
    columns={"occurred_at": "When", "handle": "Twitter", "display_name": "Name", "text": "Tweet"},
    kind="chat_answer", space="kaizenblog", platform="twitter",
)  # fmt: skip


async def test_mapped_columns_become_contributions_and_unknown_handles_new_members(
    ledger: Ledger, tmp_path: Path
) -> None:
    caroline = c.RegisterMember(member_id=new_id(), display_name="Caroline Di Diego",
                                handles=("twitter:@casudi",))  # fmt: skip
    await execute_commands(CommandHandler(ledger), [caroline])
    path = tmp_path / "transcript.csv"
    path.write_text(TRANSCRIPT)

    summary = await run_import(ledger, csv_source(str(path), MAPPED))

    assert (summary.read, summary.events_written, summary.members_created) == (4, 4, 1)
    assert summary.rejections == [("line 6", "no handle in column 'Twitter'")]
    events = [event for *_, event in await all_events(ledger)]
    registered = [e for e in events if isinstance(e, MemberRegistered)]
    stephen = registered[-1]
    assert (stephen.display_name, stephen.handles) == ("Stephen Denny", ("twitter:@Note_To_CMO",))
    answers = [e for e in events if isinstance(e, ContributionRecorded)]
    assert [(a.member_id, a.attributes["Question"]) for a in answers] == [
        (stephen.member_id, "Q1"), (caroline.member_id, "Q2"), (stephen.member_id, "Q3"),
    ]  # fmt: skip
    assert answers[1].body == "contributing/communicating\nU name it"
    assert {(a.kind, a.space) for a in answers} == {("chat_answer", "kaizenblog")}


async def test_dates_without_an_offset_are_utc_and_a_date_alone_is_midnight(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "transcript.csv"
    path.write_text(TRANSCRIPT)

    await run_import(ledger, csv_source(str(path), MAPPED))

    dates = [at for kind, _, at, _ in await all_events(ledger) if kind == "ContributionRecorded"]
    assert dates == [
        datetime(2009, 8, 23, 23, 2, tzinfo=UTC),
        datetime(2009, 8, 23, 23, 5, tzinfo=UTC),
        datetime(2009, 8, 23, tzinfo=UTC),
    ]


async def test_headers_match_our_names_by_themselves_and_rows_need_a_kind_and_space(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "forum.csv"
    path.write_text("Handle,Display Name,Kind,Text,Thread\n"
                    "github:octocat,Octo Cat,answer,Use git bisect,t-42\n"
                    "github:hubot,Hubot,,No kind,t-43\n")  # fmt: skip

    summary = await run_import(ledger, csv_source(str(path), CsvOptions(space="forum")))

    assert summary.rejections == [("line 3", "no kind: give a kind column or --kind")]
    contribution = next(
        e for *_, e in await all_events(ledger) if isinstance(e, ContributionRecorded)
    )
    assert (contribution.kind, contribution.body, contribution.attributes) == (
        "answer", "Use git bisect", {"Thread": "t-42"},
    )  # fmt: skip


def test_a_mapping_to_a_header_the_file_lacks_is_refused_before_anything_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "transcript.csv"
    path.write_text(TRANSCRIPT)

    with pytest.raises(UnreadableSource, match="no header 'Handle'"):
        csv_source(str(path), CsvOptions(columns={"handle": "Handle"}))


SHEET = """\
Handle,Display Name,Kind,Space,Text
github:octocat,Octo Cat,answer,forum,Use git bisect,,
,,,,
github:hubot,Hubot,answer,forum,Try -z, ,
 , , , ,\x20
"""


def test_rows_of_empty_cells_ask_for_nothing_and_the_command_exits_0(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Spreadsheets export blank rows and empty cells past the last header: no rejections."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "forum.csv"
    path.write_text(SHEET)

    status = main(["import", "csv", str(path)])

    output = capsys.readouterr().out
    assert status == 0
    assert "rows read: 2" in output and "events written: 4" in output and "rejected: 0" in output


def test_the_command_exits_1_when_a_row_was_rejected(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "forum.csv"
    path.write_text(SHEET + "github:ana,Ana,answer,forum,Cells,past,the,header\n")

    status = main(["import", "csv", str(path)])

    output = capsys.readouterr().out
    assert status == 1
    assert "line 6: 3 more cells than the header has columns" in output
    assert "credits skipped" not in output  # only sources that can skip say so
