"""Request bodies decoded once, strictly, straight from the bytes.

Litestar's own path decodes JSON to builtins and then converts them leniently, which
would take a number where a date belongs. `StrictBody`, set once as the app's `dto`,
decodes each handler's `data` with a msgspec decoder built for its type at startup, and
refuses exactly as before: what lenient conversion refuses is reported field by field,
as Litestar reports it; what only strictness refuses names the whole body.

Two things no schema says are refused too: text holding NUL (`\u0000`, which PostgreSQL
cannot store), before decoding; and nesting deeper than `MAX_DEPTH`. An accepted body
needs no depth check (a typed decode nests no deeper than the type, far below it), so
the bytes are measured only once typed decoding refused them, before the refusal decodes
them untyped; a typed decode that recurses (msgspec skipping a deep value while it seeks
a union's tag) is refused as too deep as well.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, ClassVar

import msgspec
from litestar._openapi.schema_generation import SchemaCreator
from litestar.datastructures import URL
from litestar.dto import AbstractDTO
from litestar.dto._backend import DTOBackend
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.exceptions import ClientException, ValidationException
from litestar.openapi.spec import Reference, Schema
from litestar.typing import FieldDefinition

_AT_FIELD = re.compile(r"`\$\.(.+)`$")  # how msgspec names where a value is wrong
# An odd run of backslashes before u0000: an escaped NUL (an even run escapes the backslash).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")

MAX_DEPTH = 32
"""How deep arrays and objects may nest in a request body; ours nest at most 4 deep."""
_TOO_DEEP = f"the body nests arrays or objects more than {MAX_DEPTH} deep"


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether `body` nests arrays or objects more than `limit` deep.

    At C speed, never recursing: strings out, brackets only, then one innermost level
    of `()` pairs removed per pass; what is left after `limit` passes is deeper. A run of
    more than `limit` openers ends it at once (the usual hostile body is one long run).
    """
    brackets = _STRING.sub(b"", body).translate(_OPEN_CLOSE, _NOT_BRACKETS)
    run = b"(" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return False
        if run in brackets:
            return True
        brackets = brackets.replace(b"()", b"")
    return bool(brackets)


class StrictBody(AbstractDTO[Any]):
    """Decodes the handler's `data` annotation from the raw body; the schema is unchanged."""

    _decoders: ClassVar[dict[str, tuple[type[Any], msgspec.json.Decoder[Any]]]] = {}

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        """Build the handler's decoder once, when Litestar resolves its `data`."""
        body_type = field_definition.annotation
        cls._decoders[handler_id] = (body_type, msgspec.json.Decoder(body_type))

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    def decode_bytes(self, value: bytes) -> Any:
        body_type, decoder = self._decoders[self.asgi_connection.route_handler.handler_id]
        if _NUL_ESCAPE.search(value):
            raise self._invalid(
                self.asgi_connection.url.path, "data", "text must not contain NUL (\\u0000)"
            )
        try:
            return decoder.decode(value)
        except RecursionError as error:  # skipping a deep unknown value, e.g. seeking a tag
            raise ClientException(_TOO_DEEP) from error
        except msgspec.ValidationError as error:  # a DecodeError too: first
            raise self._refusal(value, body_type, error) from error
        except msgspec.DecodeError as error:
            raise ClientException(str(error)) from error

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        raise ClientException("request bodies are JSON")

    def _refusal(
        self, value: bytes, body_type: type[Any], strict: msgspec.ValidationError
    ) -> Exception:
        """The answer Litestar's lenient decoding gives, or the strict one if that passes.

        Runs only on a refused body, so the second decode costs an accepted one nothing.
        """
        if too_deep(value):
            return ClientException(_TOO_DEEP)
        try:
            builtins = msgspec.json.decode(value)
        except msgspec.DecodeError as error:
            return ClientException(str(error))
        try:
            msgspec.convert(builtins, body_type, strict=False, str_keys=True)
        except msgspec.ValidationError as lenient:
            found = _AT_FIELD.search(str(lenient))
            message = str(lenient).split(" - ", maxsplit=1)[0]
            url = self.asgi_connection.url
            where = URL.from_components(path=url.path, query=url.query)
            return self._invalid(where, found.group(1) if found else "data", message)
        return self._invalid(self.asgi_connection.url.path, "data", str(strict))

    def _invalid(self, where: object, key: str, message: str) -> ValidationException:
        method = self.asgi_connection.scope["method"]  # type: ignore[typeddict-item]
        return ValidationException(
            f"Validation failed for {method} {where}",
            extra=[{"message": message, "key": key, "source": "body"}],
        )
