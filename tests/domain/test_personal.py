"""Every field of every event type is declared personal (sealed) or clear: no silent new field."""

from __future__ import annotations

import msgspec

from domain.events import EVENT_TYPES
from domain.personal import BLANKS, PERSONAL


def test_every_event_type_has_a_decision() -> None:
    assert set(PERSONAL) == set(EVENT_TYPES)


def test_every_field_of_every_event_is_declared_sealed_or_clear_exactly_once() -> None:
    for name, cls in EVENT_TYPES.items():
        declared = [*PERSONAL[name].sealed, *PERSONAL[name].clear]
        assert sorted(declared) == sorted(cls.__struct_fields__), name


def test_every_text_field_is_sealed_unless_it_is_a_kind_or_a_space() -> None:
    """Free text is personal by default; only the vocabularies counts are made of stay clear."""
    for name, cls in EVENT_TYPES.items():
        for field in msgspec.structs.fields(cls):
            if "str" in str(field.type) and field.name not in ("kind", "space"):
                assert field.name in PERSONAL[name].sealed, f"{name}.{field.name}"


def test_the_key_owner_is_a_member_id_field_kept_clear() -> None:
    for name, personal in PERSONAL.items():
        assert personal.owner in personal.clear, name
        assert personal.owner.endswith("_id"), name


def test_an_erased_event_still_decodes_with_its_blanks() -> None:
    registered = EVENT_TYPES["MemberRegistered"]
    fields = {"member_id": "01a23a3a-c527-7a16-a2c9-0e3dfb13c417", **BLANKS["MemberRegistered"]}
    event = msgspec.convert(fields, registered)
    assert event.display_name == ""  # type: ignore[attr-defined]
