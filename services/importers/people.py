"""People in a Git history: who a credit trailer names, by address or, failing that, by name.

Trailers are free text. In the wild they read `Name <addr>`, `<addr>`, `addr`,
`Name (comment)`, `Name <addr> (comment)`, `"Last, First" <addr>`. An address is the
identity; a trailer without one is matched by name against everyone the whole history
and its `.mailmap` name (`People`), so the answer never depends on where it stands.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from domain.errors import InvalidHandle
from domain.handles import parse_handle

_CONTACT = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>")
# A quoted string, a (comment), an <address>, or plain text up to the next of those.
_PART = re.compile(
    r'"(?P<quoted>(?:\\.|[^"\\])*)"|(?P<comment>\((?:\\.|[^()\\])*\)?)|<(?P<angle>[^<>]*)>?'
    r"|(?P<plain>[^\"(<]+|.)"
)
_PUNCTUATION = ",;:.'\"<>[]"
# `.mailmap`: `Proper Name <proper@addr> Commit Name <commit@addr>`, names and 2nd pair optional.
_MAILMAP_ENTRY = re.compile(r"^\s*([^<]*?)\s*<([^<>]*)>(?:\s*([^<]*?)\s*<([^<>]*)>)?")


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
    """`Ana Lima <ana@example.org>` as git writes it; None without an address."""
    found = _CONTACT.match(value)
    return Person(found["name"], found["email"]) if found else None


def parse_credit(value: str) -> tuple[str, str]:
    """(name, address) a trailer's value names, either possibly empty.

    The first `<…>` (or, without one, the first word shaped like an address) is the
    address; quotes are taken off, (comments) and anything after the address dropped.
    """
    names: list[str] = []
    address = ""
    for part in _PART.finditer(value):
        if part["angle"] is not None:
            address = part["angle"].strip() if is_address(part["angle"].strip()) else ""
            break
        if part["quoted"] is not None:
            names.append(re.sub(r"\\(.)", r"\1", part["quoted"]))
        elif part["plain"] is not None:
            for word in part["plain"].split():
                if not address and is_address(bare := word.strip(_PUNCTUATION)):
                    address = bare
                elif word := word.strip('"'):  # a quote never closed is a typo, not a name
                    names.append(word)
    name = " ".join(" ".join(names).replace("<", " ").replace(">", " ").split())
    return name.strip(",;: "), address


def is_address(text: str) -> bool:
    """One `@` between two non-empty parts, and an `email:` handle the ledger accepts."""
    local, at, domain = text.partition("@")
    if not (at and local and domain) or "@" in domain:
        return False
    try:
        parse_handle(f"email:{text}")
    except InvalidHandle:
        return False
    return True


def name_key(name: str) -> str:
    """How names compare: `José  MÜLLER` is `josé müller`, however its accents are encoded."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


@dataclass
class People:
    """Everyone the history names with an address, findable by any name they go by."""

    by_key: dict[str, Person] = field(default_factory=dict)
    keys_by_name: dict[str, set[str]] = field(default_factory=dict)

    def add(self, person: Person, aliases: Iterable[str] = ()) -> None:
        """`person` as git or the mailmap gives it; `aliases`: other names they were written as."""
        if not person.email:
            return
        known = self.by_key.get(person.key)
        if known is None or (person.name and not known.name):
            self.by_key[person.key] = person  # the first name wins: the mailmap's, then the newest
        for name in (person.name, *aliases):
            if key := name_key(name):
                self.keys_by_name.setdefault(key, set()).add(person.key)

    def named(self, name: str) -> list[Person]:
        """Everyone who goes by `name`: one person, or none, or (ambiguous) several."""
        return [self.by_key[key] for key in sorted(self.keys_by_name.get(name_key(name), ()))]

    def name_of(self, person: Person) -> Person:
        """`person`, named as the history names their address when the trailer gave no name."""
        known = self.by_key.get(person.key)
        return Person(known.name, person.email) if not person.name and known else person


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

    def entries(self) -> Iterator[tuple[Person, list[str]]]:
        """Each `.mailmap` entry as the person it maps to, and the names it knows them by."""
        for text in self._files():
            for line in text.splitlines():
                found = None if line.lstrip().startswith("#") else _MAILMAP_ENTRY.match(line)
                if found is None:
                    continue
                proper, first, commit_name, second = found.groups()
                address = (second if second is not None else first).strip()
                if is_address(address):
                    person = self.resolve(Person(commit_name or "", address))
                    yield person, [name for name in (proper, commit_name) if name]

    def _files(self) -> Iterator[str]:
        """The repository's `.mailmap` and `mailmap.file`, the files git itself reads."""
        configured = subprocess.run(
            ["git", "-C", str(self.top), "config", "--path", "--get", "mailmap.file"],
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        for path in (self.top / ".mailmap", *([self.top / configured] if configured else [])):
            if path.is_file():
                yield path.read_text(encoding="utf-8", errors="replace")

    def _ask(self, contact: str) -> str:
        if self.process is None:
            self.process = subprocess.Popen(
                ["git", "-C", str(self.top), "check-mailmap", "--stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, encoding="utf-8",
            )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(contact + "\n")
        self.process.stdin.flush()  # git answers each line as it reads it
        answer = self.process.stdout.readline()
        if not answer:  # git gave up on a contact it cannot parse: ask a fresh one next time
            self.process.wait()
            self.process = None
        return answer
