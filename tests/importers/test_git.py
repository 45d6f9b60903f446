"""`import git`: commits per author as git counts them, trailers as credits, re-runs idempotent."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from domain.events import ContributionRecorded, Event, MemberRegistered, RecognitionGiven
from services.cli import main
from services.importers.common import run_import
from services.importers.git import git_source
from services.store.ledger import Ledger
from tests.importers.conftest import all_events

pytestmark = pytest.mark.anyio

ANA_OLD = "Ana <ana@old.example>"
ANA = "Ana Lima <ana@example.org>"
BOB = "Bob <bob@example.org>"


def git(repo: Path, *args: str, author: str = ANA, day: int = 1) -> str:
    name, _, email = author.partition(" <")
    date = f"2024-01-{day:02d}T12:00:00+02:00"
    env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email.rstrip(">"),
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email.rstrip(">"),
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def commit(repo: Path, message: str, author: str = ANA, day: int = 1) -> None:
    note = repo / f"note-{len(list(repo.glob('note-*')))}-{author[0]}.txt"
    note.write_text(message + "\n")  # a file per commit: branches merge without conflicts
    git(repo, "add", note.name, author=author, day=day)
    git(repo, "commit", "-q", "-m", message, author=author, day=day)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Ana commits under two addresses (.mailmap folds them); Bob works on a merged branch."""
    repo = tmp_path / "Tiny Repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".mailmap").write_text(
        f"{ANA} <ana@old.example>\nCy Real <cy@example.org> <CY@Z.example>\n"
    )
    commit(repo, "Start the log", author=ANA_OLD, day=1)
    commit(repo, "Fix the parser\n\nLong story.\n\nCo-authored-by: Bob <bob@example.org>\n"
                 "Reviewed-by: Cy <CY@Z.example>\nReported-by: Dee <dee@example.org>\n"
                 "Suggested-by: Ana <ana@old.example>\nSigned-off-by: Ana Lima <ana@example.org>",
           day=2)  # fmt: skip
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "Add a feature\n\nTested-by: Cy Real <cy@example.org>\n"
                 "Acked-by: Ana <ana@old.example>\nCo-authored-by: Bob <BOB@example.org>",
           author=BOB, day=3)  # fmt: skip
    git(repo, "checkout", "-q", "main")
    commit(repo, "Meanwhile on main", day=4)
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature", day=5)
    return repo


def by_email(events: Sequence[Event]) -> dict[UUID, str]:
    return {e.member_id: e.handles[0].removeprefix("email:").lower()
            for e in events if isinstance(e, MemberRegistered)}  # fmt: skip


async def test_commits_per_author_match_git_log_with_the_mailmap(
    repo: Path, ledger: Ledger
) -> None:
    summary = await run_import(ledger, git_source(str(repo)))

    events = [event for *_, event in await all_events(ledger)]
    email = by_email(events)
    counted = Counter(email[e.member_id] for e in events
                      if isinstance(e, ContributionRecorded) and e.kind == "commit")  # fmt: skip
    log = git(repo, "log", "--no-merges", "--use-mailmap", "--format=%aE").split()
    assert counted == Counter(address.lower() for address in log)
    assert counted == {"ana@example.org": 3, "bob@example.org": 1}
    assert (summary.read, summary.rejected) == (4, 0)


async def test_trailers_credit_the_people_they_name_once_and_never_the_author_themself(
    repo: Path, ledger: Ledger
) -> None:
    await run_import(ledger, git_source(str(repo)))

    events = [event for *_, event in await all_events(ledger)]
    email = by_email(events)
    credits = sorted((e.kind, email[e.member_id]) for e in events
                     if isinstance(e, ContributionRecorded) and e.kind != "commit")  # fmt: skip
    assert credits == [("ack", "ana@example.org"), ("co_authored_commit", "bob@example.org"),
                       ("review", "cy@example.org"), ("test", "cy@example.org")]  # fmt: skip
    thanks = [e for e in events if isinstance(e, RecognitionGiven)]
    assert [(email[t.from_id], email[t.to_id], t.kind, t.reason) for t in thanks] == [
        ("ana@example.org", "dee@example.org", "thanks", "reported")
    ]
    names = {e.display_name for e in events if isinstance(e, MemberRegistered)}
    assert names == {"Ana Lima", "Bob", "Cy Real", "Dee"}


async def test_a_commit_is_titled_by_its_subject_dated_by_its_author_in_the_repository_space(
    repo: Path, ledger: Ledger
) -> None:
    await run_import(ledger, git_source(str(repo)))

    commits = [(e, at) for kind, _, at, e in await all_events(ledger)
               if isinstance(e, ContributionRecorded) and e.kind == "commit"]  # fmt: skip
    first, at = commits[0]
    sha = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert (first.title, first.space, first.attributes, first.url) == (
        "Start the log", "tiny-repo", {"sha": sha}, "",
    )  # fmt: skip
    assert at == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert [e.title for e, _ in commits] == ["Start the log", "Fix the parser", "Add a feature",
                                             "Meanwhile on main"]  # fmt: skip


async def test_importing_the_same_history_again_writes_nothing(repo: Path, ledger: Ledger) -> None:
    first = await run_import(ledger, git_source(str(repo)))
    commit(repo, "One more", day=6)

    again = await run_import(ledger, git_source(str(repo)), chunk_size=3)
    last = await run_import(ledger, git_source(str(repo)), chunk_size=3)

    assert first.events_written == 13 and first.members_created == 4
    assert again.events_written == 1 and again.rejected == 0
    assert (last.events_written, last.rejected) == (0, 0)
    assert len(await all_events(ledger)) == 14


async def test_this_repositorys_own_history_counts_as_git_log_does(ledger: Ledger) -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not running from a clone")

    summary = await run_import(ledger, git_source(str(root)))

    events = [event for *_, event in await all_events(ledger)]
    email = by_email(events)
    counted = Counter(email[e.member_id] for e in events
                      if isinstance(e, ContributionRecorded) and e.kind == "commit")  # fmt: skip
    log = git(root, "log", "--no-merges", "--use-mailmap", "--format=%aE").split()
    assert counted == Counter(address.lower() for address in log)
    assert summary.read == len(log) and summary.rejected == 0


DOUGLAS = "douglas.fuller@gmail.com"
JOSE = "José Müller <jose@example.org>"
SAM_ONE, SAM_TWO = "Sam Lee <sam@one.example>", "Sam Lee <sam@two.example>"


@pytest.fixture
def credits_repo(tmp_path: Path) -> Path:
    """Trailers in the shapes found in the wild, some naming people only by name.

    José is named (decomposed accents, odd case and spacing) before his first commit and
    after it; Karen only the mailmap knows; two people go by Sam Lee; nobody by Nobody Known.
    """
    repo = tmp_path / "credits"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".mailmap").write_text(
        f"{ANA} <ana@old.example>\nKaren Huang <karen@example.org> <khuang@old.example>\n"
    )
    commit(repo, f"Start\n\nReported-by: {DOUGLAS}\nReported-by: Karen Huang (via GitHub)\n"
                 "Tested-by:  Jose\u0301   MU\u0308LLER \nAcked-by: Sam Lee\n"
                 "Suggested-by: Nobody Known\nCo-authored-by: Cy <cy@example.org> (on a plane)",
           author=ANA_OLD, day=1)  # fmt: skip
    commit(repo, "One Sam", author=SAM_ONE, day=2)
    commit(repo, "Another Sam", author=SAM_TWO, day=3)
    commit(repo, "José's fix", author=JOSE, day=4)
    commit(repo, 'Bob\'s turn\n\nReviewed-by: "Lima, Ana" <ANA@example.org> (maintainer)\n'
                 "Suggested-by: ana\nReported-by: <dee@example.org>\nTested-by: josé müller",
           author=BOB, day=5)  # fmt: skip
    return repo


async def test_bare_addresses_and_names_the_history_knows_are_credited_the_rest_skipped(
    credits_repo: Path, ledger: Ledger
) -> None:
    summary = await run_import(ledger, git_source(str(credits_repo)))

    events = [event for *_, event in await all_events(ledger)]
    email = by_email(events)
    credits = sorted((e.kind, email[e.member_id]) for e in events
                     if isinstance(e, ContributionRecorded) and e.kind != "commit")  # fmt: skip
    assert credits == [("co_authored_commit", "cy@example.org"), ("review", "ana@example.org"),
                       ("test", "jose@example.org"), ("test", "jose@example.org")]  # fmt: skip
    thanks = sorted((email[e.from_id], e.reason, email[e.to_id]) for e in events
                    if isinstance(e, RecognitionGiven))  # fmt: skip
    assert thanks == [("ana@example.org", "reported", DOUGLAS),
                      ("ana@example.org", "reported", "karen@example.org"),
                      ("bob@example.org", "reported", "dee@example.org"),
                      ("bob@example.org", "suggested", "ana@example.org")]  # fmt: skip
    names = {e.display_name for e in events if isinstance(e, MemberRegistered)}
    assert {"Karen Huang", "José Müller", "Ana Lima", "Cy"} <= names
    assert (summary.read, summary.rejected, summary.skipped, summary.exit_status) == (5, 0, 2, 0)
    assert [what for _, what in summary.skips] == [
        "Acked-by: no address, and 2 people in the history go by that name",
        "Suggested-by: no address, and no one by that name in the history or the mailmap",
    ]


async def test_the_summary_counts_skipped_credits_without_naming_anyone(
    credits_repo: Path, ledger: Ledger
) -> None:
    summary = await run_import(ledger, git_source(str(credits_repo)))

    first = git(credits_repo, "rev-list", "--max-parents=0", "HEAD").strip()
    rendered = summary.render()
    assert "  credits skipped: 2\n" in rendered and "  rejected: 0" in rendered
    assert f"    commit {first[:12]}: Acked-by: no address" in rendered
    assert "Sam" not in rendered and "Nobody" not in rendered


def test_the_command_exits_0_when_every_commit_was_imported_though_credits_were_skipped(
    credits_repo: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)

    dry_status = main(["import", "git", str(credits_repo), "--dry-run"])
    dry_output = capsys.readouterr().out
    status = main(["import", "git", str(credits_repo)])
    output = capsys.readouterr().out

    assert (dry_status, status) == (0, 0)
    for shown in (dry_output, output):
        assert "commits read: 5" in shown and "credits skipped: 2" in shown
        assert "rejected: 0" in shown
    assert main(["import", "git", str(credits_repo / "missing")]) == 2


def test_the_command_exits_1_when_a_commit_was_not_imported(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", database_url)
    repo = tmp_path / "nameless"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "A commit with an address")
    commit(repo, "A commit without one", author="Anonymous <>")

    status = main(["import", "git", str(repo)])

    assert status == 1
    assert "the author has no e-mail address" in capsys.readouterr().out
