"""What an import did (or, in a dry run, would do): counts, rejections with their lines."""

from __future__ import annotations

from dataclasses import dataclass, field

SHOWN_REJECTIONS = 50


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
    stopped: str | None = None

    def reject(self, where: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < SHOWN_REJECTIONS:
            self.rejections.append((where, " ".join(reason.split())))

    @property
    def exit_status(self) -> int:
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
            f"  rejected: {self.rejected:,}",
        ]
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
