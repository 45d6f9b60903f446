"""People in a Git history: `Name <e-mail>` as written, and as the repository's `.mailmap` says."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_CONTACT = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>")


@dataclass(frozen=True)
class Person:
    name: str
    email: str

    @property
    def handle(self) -> str:
        return f"email:{self.email}"

    @property
    def key(self) -> str:
        """E-mail addresses compare without case, as the ledger's handle keys do."""
        return self.email.lower()

    @property
    def contact(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else f"<{self.email}>"


def parse_person(value: str) -> Person | None:
    """`Ana Lima <ana@example.org>` (anything after the address is ignored); None without one."""
    found = _CONTACT.match(value)
    return Person(found["name"], found["email"]) if found else None


class Mailmap:
    """`git check-mailmap`, kept running for the whole import, with what it answered cached.

    Trailers are plain text, so `git log --use-mailmap` does not map them; this does,
    one round trip per person, not per trailer.
    """

    def __init__(self, top: Path) -> None:
        self.top = top
        self.known: dict[str, Person] = {}
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Mailmap:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait()

    def resolve(self, person: Person) -> Person:
        contact = person.contact
        if contact not in self.known:
            self.known[contact] = parse_person(self._ask(contact)) or person
        return self.known[contact]

    def _ask(self, contact: str) -> str:
        if self.process is None:
            self.process = subprocess.Popen(
                ["git", "-C", str(self.top), "check-mailmap", "--stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
            )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(contact + "\n")
        self.process.stdin.flush()  # git answers each line as it reads it
        return self.process.stdout.readline()
