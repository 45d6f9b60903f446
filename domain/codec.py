"""Turning events into stored payloads and back, upcasting old versions on the way."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.errors import UnknownEventType
from domain.events import EVENT_TYPES, Event
from domain.upcasters import upcast

_encoder = msgspec.json.Encoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode_payload(event: Event) -> bytes:
    """The JSON stored in the `data` column; it keeps the `type` tag: harmless, self-describing."""
    return _encoder.encode(event)


def decode_event(type_name: str, schema_version: int, data: bytes | str | dict[str, Any]) -> Event:
    """Decode a stored payload; unknown fields are ignored so older code reads newer rows."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name)
    if schema_version == cls.SCHEMA_VERSION and not isinstance(data, dict):
        return _decoders[type_name].decode(data)
    payload = data if isinstance(data, dict) else msgspec.json.decode(data)
    payload = upcast(type_name, schema_version, cls.SCHEMA_VERSION, payload)
    return msgspec.convert(payload, cls)
