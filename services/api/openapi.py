"""Finishing touches on the generated OpenAPI document: every error a caller can meet is
documented as problem+json, and every operation carries an example."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    Schema,
)

PROBLEM_SCHEMA = Schema(
    type="object",  # type: ignore[arg-type]
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type="string"),  # type: ignore[arg-type]
        "title": Schema(type="string"),  # type: ignore[arg-type]
        "status": Schema(type="integer"),  # type: ignore[arg-type]
        "detail": Schema(type="string"),  # type: ignore[arg-type]
        "instance": Schema(type="string"),  # type: ignore[arg-type]
        "errors": Schema(type="array", items=Schema(type="object")),  # type: ignore[arg-type]
    },
    description="An RFC 9457 problem detail; `errors` lists each bad field of a 400.",
)

ERRORS = {
    "400": "The request is malformed: bad JSON, wrong types, unknown fields (each listed)",
    "401": "No valid API key: send `Authorization: Bearer <token>`",
    "403": "The API key's scope does not allow this operation",
    "404": "A member, contribution, recognition or event named does not exist",
    "405": "Method not allowed",
    "409": "A conflict: the member moved on (If-Match), or an id or handle is taken",
    "413": "The body is larger than the server accepts",
    "415": "Unsupported media type",
    "422": "A rule of the domain is broken, or an Idempotency-Key was reused for another body",
    "429": "Too many requests",
    "500": "The server failed; nothing was written",
    "503": "min_position not reached in time (see Retry-After), or the database is unavailable",
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "RegisterMember": {"display_name": "Yann Ropars", "handles": ["twitter:@yannr"]},
    "UpdateMember": {"bio": "Community builder", "add_handles": ["github:yannr"]},
    "MergeMembers": {"duplicate": "twitter:@yann_old"},
    "ForgetMember": {"reason": "the member asked to be forgotten"},
    "RecordContribution": {
        "member": "twitter:@yannr",
        "kind": "chat_answer",
        "space": "kaizenblog",
        "body": "Connections are shortcuts",
        "attributes": {"question": "Q1"},
    },
    "RetractContribution": {"reason": "posted twice"},
    "MakeIntroduction": {
        "introducer": "twitter:@ConversationAge",
        "introduced": ["twitter:@yannr", "twitter:@CASUDI"],
        "space": "kaizenblog",
    },
    "RecordMention": {"member": "twitter:@ConversationAge", "mentioned": "twitter:@yannr"},
    "GiveRecognition": {
        "from": "twitter:@ConversationAge",
        "to": "twitter:@yannr",
        "kind": "highlight",
        "reason": "started the side conversation",
    },
    "WithdrawRecognition": {"reason": "given by mistake"},
    "AppendBatch": {
        "items": [
            {"command": "register_member", "display_name": "Ana", "handles": ["github:ana"]},
            {
                "command": "record_contribution",
                "member": "github:ana",
                "kind": "review",
                "space": "community-ledger",
            },
        ]
    },
}

WRITTEN_EXAMPLE = {
    "id": "0194b3c2-8a1e-7c3d-9f00-5b2a1c9d4e6f",
    "event_ids": ["0194b3c2-8a1f-7d11-8e2a-3c4b5d6e7f80"],
    "positions": [42],
    "replayed": False,
}


def finish(app: Litestar) -> None:
    """Add the problem responses and examples to the app's (cached) document, once."""
    document = app.openapi_schema
    components = document.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas["Problem"] = PROBLEM_SCHEMA
    problem = {
        "application/problem+json": OpenAPIMediaType(
            schema=Reference("#/components/schemas/Problem")
        )
    }
    for path, item in (document.paths or {}).items():
        for method in ("get", "post", "patch", "put", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for status, description in ERRORS.items():
                if status in {"401", "403"} and not operation.security:
                    continue
                responses[status] = OpenAPIResponse(description=description, content=problem)
            operation.responses = responses
            _example(operation, path)


def _example(operation: Any, path: str) -> None:
    body = EXAMPLES.get(operation.operation_id or "")
    if body is not None and operation.request_body is not None:
        for media in (operation.request_body.content or {}).values():
            media.examples = {"example": Example(summary=operation.summary, value=body)}
    for status, response in (operation.responses or {}).items():
        if status.startswith("2") and isinstance(response, OpenAPIResponse):
            for media in (response.content or {}).values():
                if media.examples is None and operation.operation_id in EXAMPLES:
                    media.examples = {"written": Example(value=WRITTEN_EXAMPLE)}
