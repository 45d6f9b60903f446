"""Input hygiene: text a person could be fooled by, or the database could not store.

The ledger never forgets, so what it takes in must be safe to show and to store: a
name that reverses the text around it or draws nothing, a `javascript:` link, a date
in 1900 or next year, a NUL that PostgreSQL refuses. The rules here are pure; the
handler applies them to every write, from the API and the importers alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from domain.errors import InvalidField

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No community activity the ledger records happened before this."""
MAX_AHEAD = timedelta(days=1)
"""How far past the server's clock a date may be: a caller's clock skew, not a plan."""
WEB_LINK = re.compile(r"https?://[^/?#\s]+([/?#]\S*)?", re.IGNORECASE)
"""http or https with a host: a reader follows it without running anything (no `javascript:`)."""

# Explicit bidirectional embeddings, overrides and isolates (and the marks): they
# reorder the text shown after them, so `Ana\u202eSTAEB` reads as someone else.
BIDI_CONTROLS = frozenset(
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Letters that draw nothing yet are not classed as spaces or format characters.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u17b4\u17b5")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cn"})


def display_name_problem(name: str) -> str | None:
    """Why `name` cannot be shown as a person's name, or None when it can."""
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in name):
        return "must not contain control characters (newlines, tabs, escapes)"
    if any(ch in BIDI_CONTROLS for ch in name):
        return "must not contain bidirectional control characters (e.g. U+202E)"
    if all(_invisible(ch) for ch in name):
        return "must contain a visible character"
    return None


def _invisible(ch: str) -> bool:
    return ch in BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def require_display_name(name: str, field: str = "display_name") -> str:
    if (problem := display_name_problem(name)) is not None:
        raise InvalidField(field, problem)
    return name


def require_web_link(link: str) -> str:
    if not WEB_LINK.fullmatch(link):
        raise InvalidField("links", "each link must be an http:// or https:// address")
    return link


def require_moment(field: str, value: datetime, now: datetime) -> datetime:
    """Not before 1970 and at most a day past `now`; a date without a zone is taken as UTC."""
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if moment < EARLIEST:
        raise InvalidField(field, "must not be before 1970-01-01T00:00:00Z")
    if moment > now + MAX_AHEAD:
        raise InvalidField(field, "must not be more than a day in the future")
    return moment


def unstorable_field(value: Any, path: str = "") -> str | None:
    """The first field holding text PostgreSQL cannot store (NUL, a lone surrogate), if any.

    Walks strings, Structs, sequences and mappings (keys too), so every command is covered
    without listing its fields.
    """
    for where, text in _texts(value, path):
        if "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text):
            return where or "value"
    return None


def require_storable(value: Any) -> None:
    if (where := unstorable_field(value)) is not None:
        raise InvalidField(where, "must not contain NUL characters or lone surrogates")


def _texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _texts(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key, path)
            yield from _texts(item, path)  # not the key in the path: it may be the bad text
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item, path)
