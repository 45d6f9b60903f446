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
