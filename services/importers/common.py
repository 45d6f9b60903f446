"""The engine every importer shares: a source's lines in, chunks through the one write path.

Each chunk is one atomic `CommandHandler.execute` under an idempotency key made of the
source kind and a hash of the chunk's content, so running the same import again replays
instead of writing. A chunk that breaks a rule is retried one item at a time: good items
are written and each bad one is rejected with the line it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from domain import commands as c
from domain.errors import (
    ContributionAlreadyRecorded,
    IntroductionAlreadyMade,
    LedgerError,
    MemberAlreadyRegistered,
    MentionAlreadyRecorded,
    RecognitionAlreadyGiven,
)
from domain.ids import deterministic_id
from services.handler import CommandHandler, Resolver, Submission
from services.importers.dry_run import DryRunLedger
from services.importers.progress import Progress
from services.importers.summary import Summary
from services.intake import Item, handles_named, plan_items
from services.store.ledger import Ledger
from services.store.records import Appended

CHUNK_SIZE = 500
ALREADY_RECORDED = (
    MemberAlreadyRegistered,
    ContributionAlreadyRecorded,
    IntroductionAlreadyMade,
    MentionAlreadyRecorded,
    RecognitionAlreadyGiven,
)


class UnreadableSource(LookupError):
    """The file or repository cannot be read at all."""


@dataclass(frozen=True)
class Line:
    """One unit of a source (a line, a row, a commit): the items it became, and what was wrong."""

    where: str
    items: tuple[Item, ...] = ()
    problems: tuple[str, ...] = ()
    """What the line asked for and will not get: each is a rejection."""
    skipped: tuple[str, ...] = ()
    """Extras left out while the line itself is imported (a credit naming no one): warnings."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Display names for handles registered on the fly by items that cannot carry one."""


@dataclass(frozen=True)
class Source:
    kind: str
    """`jsonl`, `csv`, `git`: part of every idempotency key the import uses."""
    label: str
    unit: str
    lines: Iterable[Line]
    total: int | None = None
    skippable: str | None = None
    """What a line may leave out (`credits`): the summary counts them on a line of their own."""


class Importer:
    def __init__(
        self,
        ledger: Ledger,
        source: Source,
        *,
        dry_run: bool = False,
        chunk_size: int = CHUNK_SIZE,
        progress: Progress | None = None,
        handler: CommandHandler | None = None,
    ) -> None:
        # The command line passes the handler the composition root built (bootstrap);
        # library callers (run_import, tests) pass only the ledger, wired the same way.
        self.handler = handler or CommandHandler(DryRunLedger(ledger) if dry_run else ledger)
        self.source = source
        self.chunk_size = chunk_size
        self.progress = progress or Progress.silent()
        self.summary = Summary(label=source.label, unit=source.unit, dry_run=dry_run,
                               skippable=source.skippable)  # fmt: skip
        self.metadata = {"source": "import", "importer": source.kind, "origin": source.label}
        self.where = "at the start"
        self._created = 0

    async def run(self) -> Summary:
        """Import every line; on an unexpected error the summary says where it stopped."""
        pending: list[Line] = []
        size = 0
        try:
            for line in self.source.lines:
                self.summary.read += 1
                for problem in line.problems:
                    self.summary.reject(line.where, problem)
                for left_out in line.skipped:
                    self.summary.skip(line.where, left_out)
                if line.items:
                    pending.append(line)
                    size += len(line.items)
                if size >= self.chunk_size:
                    await self._chunk(pending)
                    pending, size = [], 0
                    self.progress.update(self.summary.read)
                self.where = f"after {line.where}"
            if pending:
                await self._chunk(pending)
        except BaseException as error:
            self.summary.stopped = f"{self.where}: {str(error) or type(error).__name__}"
            raise
        finally:
            self.progress.update(self.summary.read)
            self.progress.close()
        return self.summary

    async def _chunk(self, lines: Sequence[Line]) -> None:
        entries = [(line, item) for line in lines for item in line.items]
        digests = [hashlib.sha256(msgspec.json.encode(item)).hexdigest() for _, item in entries]
        chunk_digest = hashlib.sha256("\n".join(digests).encode()).hexdigest()
        key = f"import:{self.source.kind}:{chunk_digest}"
        self.where = f"at {lines[0].where}"
        names = {handle: name for line in lines for handle, name in line.names.items()}
        try:
            appended = await self._execute(
                [i for _, i in entries], digests, key, chunk_digest, names
            )
        except LedgerError:
            await self._one_by_one(entries, digests, key)
            return
        self.summary.replayed_chunks += appended.replayed
        self._count(appended, len(entries))

    async def _one_by_one(
        self, entries: list[tuple[Line, Item]], digests: list[str], key: str
    ) -> None:
        for index, ((line, item), digest) in enumerate(zip(entries, digests, strict=True)):
            self.where = f"at {line.where}"
            named = set(handles_named([item]))
            names = {h: n for h, n in line.names.items() if h in named}
            try:
                appended = await self._execute([item], [digest], f"{key}:{index}", digest, names)
            except ALREADY_RECORDED:
                self.summary.already_recorded += 1
            except LedgerError as error:
                self.summary.reject(line.where, str(error))
            else:
                self._count(appended, 1)

    async def _execute(
        self,
        items: list[Item],
        digests: list[str],
        key: str,
        fingerprint: str,
        names: Mapping[str, str],
    ) -> Appended:
        """Items without an id get one from their content, so a re-import finds them again."""

        def content_id(index: int) -> UUID:
            return deterministic_id("import", self.source.kind, digests[index])

        plan, _ = plan_items(items, content_id)
        self._created = 0

        def counted(resolver: Resolver) -> list[Submission]:
            for handle, name in names.items():
                resolver.member(handle, register_unknown=True, display_name=name)
            submissions = list(plan(resolver))
            self._created = len(resolver.registrations) + sum(
                isinstance(s.command, c.RegisterMember) for s in submissions
            )
            return submissions

        return await self.handler.execute(
            counted,
            handles=[*handles_named(items), *names],
            idempotency_key=key,
            fingerprint=fingerprint,
            metadata=self.metadata,
        )

    def _count(self, appended: Appended, items: int) -> None:
        if appended.replayed:
            self.summary.already_imported += items
        else:
            self.summary.events_written += len(appended.event_ids)
            self.summary.members_created += self._created


async def run_import(
    ledger: Ledger,
    source: Source,
    *,
    dry_run: bool = False,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> Summary:
    """Import `source` into `ledger` (or only decide it, with `dry_run`)."""
    importer = Importer(ledger, source, dry_run=dry_run, chunk_size=chunk_size, progress=progress)
    return await importer.run()
