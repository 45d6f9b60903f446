"""`import git PATH`: a repository's history as community events, streamed oldest first.

Every non-merge commit is a `commit` contribution of its author (identity: the author's
e-mail through `.mailmap`, as `git log --use-mailmap` gives it). Trailers credit others:
Co-authored-by, Reviewed-by, Tested-by and Acked-by become contributions of the person
named; Reported-by and Suggested-by become thanks from the author to them. A credit
that names no one we can tell (`people.py`) is skipped with a warning: the commit itself is
still imported. Every id is derived from the commit's sha, so importing the same history
again finds it again.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from uuid import UUID

from domain.ids import deterministic_id
from domain.limits import MAX_TITLE
from services import items as s
from services.importers.common import Line, Source, UnreadableSource
from services.importers.people import Mailmap, People, Person, parse_credit
from services.items import Item

CONTRIBUTION_TRAILERS = {"co-authored-by": "co_authored_commit", "reviewed-by": "review",
                         "tested-by": "test", "acked-by": "ack"}  # fmt: skip
RECOGNITION_TRAILERS = {"reported-by": "reported", "suggested-by": "suggested"}
# NUL-separated fields, NUL-terminated records (-z): no text in a commit can contain a NUL.
FORMAT = "%H%x00%aN%x00%aE%x00%aI%x00%s%x00%(trailers:only,unfold)"
# Who the history names: authors and committers, mapped by the mailmap and as written.
PEOPLE_FORMAT = "%aN%x00%aE%x00%an%x00%cN%x00%cE%x00%cn"
COMMITS = ("--no-merges", "--use-mailmap", "--reverse")
READ_SIZE = 1 << 16


def git_source(path: str, space: str | None = None) -> Source:
    top = Path(_git(path, "rev-parse", "--show-toplevel").strip())
    total = int(_git(path, "rev-list", "--count", "--no-merges", "HEAD").strip() or 0)
    return Source(kind="git", label=f"import git {path}", unit="commits", total=total,
                  lines=_commits(top, space or space_of(top)), skippable="credits")  # fmt: skip


def space_of(top: Path) -> str:
    """The repository's folder name as a space slug: `Community Ledger` -> `community-ledger`."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", top.name.lower()).strip("-._")
    return slug[:100] or "repository"


@dataclass(frozen=True)
class Commit:
    sha: str
    author: Person
    when: datetime
    subject: str
    trailers: str

    @property
    def title(self) -> str:
        subject = self.subject
        return subject if len(subject) <= MAX_TITLE else subject[: MAX_TITLE - 1] + "…"

    @property
    def contribution_id(self) -> UUID:
        return deterministic_id("git", "commit", self.sha)


def _commits(top: Path, space: str) -> Iterator[Line]:
    with Mailmap(top) as mailmap:
        people = known_people(top, mailmap)
        for sha, name, email, date, subject, trailers in records(top):
            commit = Commit(sha, Person(name, email), datetime.fromisoformat(date), subject,
                            trailers)  # fmt: skip
            yield commit_line(commit, space, mailmap, people)


def known_people(top: Path, mailmap: Mailmap) -> People:
    """Everyone the mailmap and the whole history name, read before the first commit.

    Reading it all first is what makes a name-only trailer match the same person whether
    it comes before or after the commits that introduce the name. Merges count: their
    committers are people of the history too.
    """
    people = People()
    for person, aliases in mailmap.entries():
        people.add(person, aliases)
    for a_name, a_email, a_written, c_name, c_email, c_written in records(
        top, ("--use-mailmap",), PEOPLE_FORMAT
    ):
        people.add(Person(a_name, a_email), [a_written])
        people.add(Person(c_name, c_email), [c_written])
    return people


def records(
    top: Path, options: tuple[str, ...] = COMMITS, pretty: str = FORMAT
) -> Iterator[list[str]]:
    """`git log`'s fields per commit, read in blocks: memory stays flat however long the history."""
    command = ["git", "-C", str(top), "log", *options, "-z", f"--format={pretty}"]
    fields_per_record = pretty.count("%x00") + 1
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as git,
    ):
        assert git.stdout is not None
        fields: list[str] = []
        for part in _split(git.stdout):
            fields.append(part.decode("utf-8", "replace"))
            if len(fields) == fields_per_record:
                yield fields
                fields = []
        if git.wait() != 0:
            errors.seek(0)
            raise UnreadableSource(f"git log failed: {errors.read().decode(errors='replace')}")


def _split(stream: IO[bytes]) -> Iterator[bytes]:
    rest = b""
    while block := stream.read(READ_SIZE):
        *parts, rest = (rest + block).split(b"\0")
        yield from parts


def commit_line(commit: Commit, space: str, mailmap: Mailmap, people: People) -> Line:
    where = f"commit {commit.sha[:12]}"
    author = commit.author
    if not author.email:
        return Line(where=where, problems=("the author has no e-mail address",))
    items: list[Item] = [_contribution(commit, space, "commit", author)]
    names = {author.handle: author.name}
    skipped: list[str] = []
    seen: set[tuple[str, str]] = set()
    for written, value in _trailers(commit.trailers):
        key = written.lower()
        kind, reason = CONTRIBUTION_TRAILERS.get(key), RECOGNITION_TRAILERS.get(key)
        if kind is None and reason is None:
            continue  # Signed-off-by, Change-Id…: not a credit
        person, why = credited(value, mailmap, people)
        if person is None:
            skipped.append(f"{written}: {why}")  # the key, never the value: it is personal
            continue
        credit = (key, person.key)
        themself = person.key == author.key and (key == "co-authored-by" or reason is not None)
        if credit in seen or themself:
            continue  # a repeated trailer, or the author crediting or thanking themself
        seen.add(credit)
        names[person.handle] = person.name
        if kind is not None:
            items.append(_contribution(commit, space, kind, person))
        else:
            items.append(_thanks(commit, space, reason or "", person))
    return Line(where=where, items=tuple(items), skipped=tuple(skipped), names=names)


def credited(value: str, mailmap: Mailmap, people: People) -> tuple[Person | None, str]:
    """The person a trailer credits, or None and why not: a name must be one person's."""
    name, address = parse_credit(value)
    if address:
        return people.name_of(mailmap.resolve(Person(name, address))), ""
    found = people.named(name) if name else []
    if len(found) == 1:
        return found[0], ""
    if not name:
        return None, "names no one"
    if not found:
        return None, "no address, and no one by that name in the history or the mailmap"
    return None, f"no address, and {len(found)} people in the history go by that name"


def _contribution(commit: Commit, space: str, kind: str, person: Person) -> Item:
    id_ = commit.contribution_id if kind == "commit" else (
        deterministic_id("git", kind, commit.sha, person.key))  # fmt: skip
    return s.RecordContributionItem(
        id=id_, member=person.handle, display_name=person.name or None, register_unknown=True,
        kind=kind, space=space, title=commit.title, attributes={"sha": commit.sha},
        occurred_at=commit.when,
    )  # fmt: skip


def _thanks(commit: Commit, space: str, reason: str, person: Person) -> Item:
    return s.GiveRecognitionItem(
        id=deterministic_id("git", "thanks", reason, commit.sha, person.key),
        from_=commit.author.handle, to=person.handle, kind="thanks", reason=reason,
        contribution_id=commit.contribution_id, space=space, register_unknown=True,
        occurred_at=commit.when,
    )  # fmt: skip


def _trailers(text: str) -> Iterator[tuple[str, str]]:
    """(key as written, value) of each trailer."""
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and value.strip():
            yield key.strip(), value.strip()


def _git(path: str, *args: str) -> str:
    if not Path(path).is_dir():
        raise UnreadableSource(f"no such directory: {path}")
    done = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise UnreadableSource(f"{path} is not a git repository with commits: "
                               f"{done.stderr.strip()}")  # fmt: skip
    return done.stdout
