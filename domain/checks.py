"""Checks the deciders share: members that must be there and active, and field limits.

The limits themselves live in `domain.limits`, which the API's schemas are built from too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from uuid import UUID

from domain import hygiene
from domain.errors import InvalidField, MemberIsForgotten, MemberWasMerged, UnknownMembers
from domain.limits import (
    KIND_PATTERN,
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_DISPLAY_NAME,
    MAX_LINKS,
    MAX_URL,
    SPACE_PATTERN,
)
from domain.state import Known

KIND = re.compile(KIND_PATTERN)
SPACE = re.compile(SPACE_PATTERN)


def require_registered(known: Known, member_ids: Iterable[UUID]) -> None:
    """Every id names a member the ledger has registered."""
    if missing := [mid for mid in dict.fromkeys(member_ids) if mid not in known.members]:
        raise UnknownMembers(missing)


def require_active(known: Known, member_ids: Iterable[UUID]) -> None:
    """Registered, not forgotten and not merged away: able to take new events."""
    ids = tuple(dict.fromkeys(member_ids))
    require_registered(known, ids)
    for member_id in ids:
        require_not_forgotten(known, member_id)
        if known.members[member_id].merged_into is not None:
            raise MemberWasMerged(member_id, known.survivor_of(member_id))


def require_not_forgotten(known: Known, member_id: UUID) -> None:
    require_registered(known, [member_id])
    if known.members[member_id].forgotten:
        raise MemberIsForgotten(member_id)


def display_name(value: str, field: str = "display_name") -> str:
    """Stripped, because ' Ana ' and 'Ana' must not look like two people; and safe to show
    (`domain.hygiene`): no control or bidi characters, something visible."""
    name = value.strip()
    if not name:
        raise InvalidField(field, "must not be blank")
    return hygiene.require_display_name(limit(field, name, MAX_DISPLAY_NAME), field)


def limit(field: str, value: str, most: int) -> str:
    if len(value) > most:
        raise InvalidField(field, f"must be at most {most} characters, got {len(value)}")
    return value


def slug(field: str, value: str, pattern: re.Pattern[str], form: str) -> str:
    """Slugs are compared as written, so they must already be lowercase: no silent rewriting."""
    if pattern.fullmatch(value):
        return value
    hint = f" (did you mean {value.lower()!r}?)" if pattern.fullmatch(value.lower()) else ""
    raise InvalidField(field, f"must be {form}; got {value!r}{hint}")


def kind(value: str) -> str:
    return slug(
        "kind",
        value,
        KIND,
        "a lowercase slug: a letter, then up to 63 lowercase letters, digits or '_', "
        "e.g. 'chat_answer'",
    )


def space(value: str, required: bool = True) -> str:
    if not value and not required:
        return value
    return slug(
        "space",
        value,
        SPACE,
        "a lowercase slug: a letter or digit, then up to 99 lowercase letters, digits, "
        "'_', '.' or '-', e.g. 'kaizenblog'",
    )


def links(values: tuple[str, ...]) -> tuple[str, ...]:
    """Stripped, blank-free, without repeats, and only http or https."""
    cleaned = tuple(dict.fromkeys(link.strip() for link in values))
    if len(cleaned) > MAX_LINKS:
        raise InvalidField("links", f"at most {MAX_LINKS} links, got {len(cleaned)}")
    for link in cleaned:
        if not link:
            raise InvalidField("links", "must not contain a blank link")
        hygiene.require_web_link(limit("links", link, MAX_URL))
    return cleaned


def attributes(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_ATTRIBUTES:
        raise InvalidField("attributes", f"at most {MAX_ATTRIBUTES} attributes, got {len(values)}")
    for key, value in values.items():
        if not key.strip():
            raise InvalidField("attributes", "names must not be blank")
        limit("attributes", key, MAX_ATTRIBUTE_KEY)
        limit(f"attributes.{key}", value, MAX_ATTRIBUTE_VALUE)
    return dict(values)
