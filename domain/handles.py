"""Handles (`platform:name`) and the one key each normalises to.

People write the same handle many ways (`twitter:@CASUDI`, `Twitter:casudi`,
`x:@Casudi`); the key is what makes them one identity, so claims, lookups and
ledger tags all compare keys. The display form keeps the name as the member wrote it,
after NFKC (so a name in full-width letters is the same name in ASCII). A name that
mixes scripts confusably (`yannr` with a Cyrillic `a`, U+0430) is refused: it would
pass for someone else.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import msgspec
from confusable_homoglyphs import confusables

from domain.errors import InvalidHandle
from domain.limits import MAX_HANDLE

PLATFORM_ALIASES = {"x": "twitter"}

_PLATFORM = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_TWITTER = re.compile(r"[A-Za-z0-9_]{1,15}")
_GITHUB = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
_MASTODON_USER = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_INVISIBLE = {"Cc", "Cf", "Cs"}  # control, format (zero-width…), lone surrogates
_MAX_OTHER = 100


class Handle(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed handle: `key` is its identity, `display` how to show it."""

    platform: str
    name: str
    key: str
    display: str

    def __str__(self) -> str:
        return self.display


def parse_handle(raw: str) -> Handle:
    """Parse `platform:name`; raises `InvalidHandle` saying which form was expected."""
    if len(raw) > MAX_HANDLE:
        raise InvalidHandle(raw, f"a handle is at most {MAX_HANDLE} characters, got {len(raw)}")
    platform_part, colon, name_part = unicodedata.normalize("NFKC", raw).strip().partition(":")
    platform = platform_part.strip().lower()
    name = name_part.strip()
    if not colon or not platform:
        raise InvalidHandle(raw, "write a handle as platform:name, e.g. twitter:@yannr")
    if not _PLATFORM.fullmatch(platform):
        raise InvalidHandle(
            raw,
            "the platform must be a letter followed by up to 31 letters, digits, '_', '.' "
            "or '-', e.g. twitter, github, email, mastodon",
        )
    platform = PLATFORM_ALIASES.get(platform, platform)
    key_name = _NORMALISERS.get(platform, _other)(raw, platform, name)
    return Handle(
        platform=platform, name=name, key=f"{platform}:{key_name}", display=f"{platform}:{name}"
    )


def claimable_handle(raw: str) -> Handle:
    """`parse_handle`, refusing a name that mixes scripts with letters that look alike.

    Only for a handle being claimed (the rules): a stored one must still fold, and a
    lookup of a look-alike simply finds nobody.
    """
    handle = parse_handle(raw)
    name = handle.key.partition(":")[2]
    if not name.isascii() and confusables.is_dangerous(name):
        raise InvalidHandle(
            raw, "the name mixes scripts with letters that look alike (e.g. a Cyrillic 'a')"
        )
    return handle


def normalize_handle(raw: str) -> str:
    """The key of a handle, e.g. `twitter:casudi` for `Twitter:@CASUDI`.

    The one comparison of handles: claims, lookups, ledger tags and anything that hashes
    a handle go through it, so two spellings of one identity can never be two keys.
    """
    return parse_handle(raw).key


def _strip_at(name: str) -> str:
    return name[1:] if name.startswith("@") else name


def _twitter(raw: str, platform: str, name: str) -> str:
    core = _strip_at(name)
    if not _TWITTER.fullmatch(core):
        raise InvalidHandle(
            raw, "a twitter name is 1-15 letters, digits or '_', written twitter:@name"
        )
    return core.lower()


def _github(raw: str, platform: str, name: str) -> str:
    core = _strip_at(name)
    if not _GITHUB.fullmatch(core):
        raise InvalidHandle(
            raw,
            "a github name is 1-39 letters, digits or '-', not starting with '-', "
            "written github:name",
        )
    return core.lower()


def _email(raw: str, platform: str, name: str) -> str:
    address = unicodedata.normalize("NFC", name).lower()
    local, _, domain = address.partition("@")
    if address.count("@") != 1 or not local or not domain or _has_invisible_or_space(address):
        raise InvalidHandle(raw, "an email handle is one address, written email:name@example.org")
    return address


def _mastodon(raw: str, platform: str, name: str) -> str:
    user, at, instance = _strip_at(name).lower().partition("@")
    if not at or not _MASTODON_USER.fullmatch(user) or not _DOMAIN.fullmatch(instance):
        raise InvalidHandle(
            raw, "a mastodon handle names its instance, written mastodon:@user@instance.social"
        )
    return f"{user}@{instance}"


def _other(raw: str, platform: str, name: str) -> str:
    core = unicodedata.normalize("NFC", _strip_at(name)).lower()
    if not 1 <= len(core) <= _MAX_OTHER or _has_invisible_or_space(core):
        raise InvalidHandle(
            raw,
            f"a {platform} name is 1-{_MAX_OTHER} characters without spaces or control "
            f"characters, written {platform}:name",
        )
    return core


def _has_invisible_or_space(text: str) -> bool:
    return any(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in text)


_NORMALISERS: dict[str, Callable[[str, str, str], str]] = {
    "twitter": _twitter,
    "github": _github,
    "email": _email,
    "mastodon": _mastodon,
}
