"""What an import did (or, in a dry run, would do): counts, rejections with their lines."""

from __future__ import annotations

from dataclasses import dataclass, field

SHOWN_REJECTIONS = 50
SHOWN_SKIPS = 10


@dataclass
class Summary:
    label: str
    unit: str
    dry_run: bool = False
    read: int = 0
    members_created: int = 0
    events_written: int = 0
    already_imported: int = 0
    """Items whose chunk (or line) was imported before under the same key: replayed."""
    replayed_chunks: int = 0
    already_recorded: int = 0
    """Items whose id the ledger already holds (e.g. an edited file imported again)."""
    rejected: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)
    """The first `SHOWN_REJECTIONS` (where, why); `rejected` counts them all."""
    skippable: str | None = None
    """What a line of this source may leave out (`credits`), if anything: it gets its own line."""
    skipped: int = 0
    skips: list[tuple[str, str]] = field(default_factory=list)
    """The first `SHOWN_SKIPS` (where, what); `skipped` counts them all."""
    stopped: str | None = None

    def reject(self, where: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < SHOWN_REJECTIONS:
            self.rejections.append((where, " ".join(reason.split())))

    def skip(self, where: str, what: str) -> None:
        self.skipped += 1
        if len(self.skips) < SHOWN_SKIPS:
            self.skips.append((where, what))

    @property
    def exit_status(self) -> int:
        """1 only when something the source asked for was not written; skips are warnings."""
        return 1 if self.rejected or self.stopped else 0

    def render(self) -> str:
        would = "would be " if self.dry_run else ""
        lines = [
            f"{self.label}" + (" (dry run: nothing was written)" if self.dry_run else ""),
            f"  {self.unit} read: {self.read:,}",
            f"  members {would}created: {self.members_created:,}",
            f"  events {would}written: {self.events_written:,}",
            f"  already imported: {self.already_imported:,} items "
            f"({self.replayed_chunks:,} chunks replayed)",
            f"  already in the ledger: {self.already_recorded:,} items",
        ]
        if self.skippable:
            lines.append(f"  {self.skippable} skipped: {self.skipped:,}")
            lines += [f"    {where}: {what}" for where, what in self.skips]
            if self.skipped > len(self.skips):
                lines.append(f"    … and {self.skipped - len(self.skips):,} more")
        lines.append(f"  rejected: {self.rejected:,}")
        lines += [f"    {where}: {why}" for where, why in self.rejections]
        if self.rejected > len(self.rejections):
            lines.append(f"    … and {self.rejected - len(self.rejections):,} more")
        if self.stopped:
            lines += [
                f"  stopped {self.stopped}",
                "  everything before that point is written; run the same import again to resume "
                "(what was written is replayed, not written twice)",
            ]
        return "\n".join(lines)
