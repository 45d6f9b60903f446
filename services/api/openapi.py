"""Finishing touches on the generated OpenAPI document: every error a caller can meet is
documented as problem+json, every operation carries an example, and request bodies are
described by msgspec, which validates them."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    Schema,
)

from services import items

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
    "404": "A member, contribution, recognition, event or webhook named does not exist",
    "405": "Method not allowed",
    "409": "A conflict: the member moved on (If-Match), or an id or handle is taken",
    "413": "The body is larger than the server accepts",
    "415": "Unsupported media type",
    "422": "A rule of the domain is broken, an Idempotency-Key was reused for another body, "
    "or a webhook's URL resolves to an address the server refuses",
    "429": "Too many requests from this address or API key, or too many failed "
    "authentications (see Retry-After); the limits are per server process",
    "500": "The server failed; nothing was written",
    "503": "min_position not reached in time, too many requests waiting for it, or a read "
    "model still being built (see Retry-After), or the database is unavailable",
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
    "CreateWebhook": {
        "url": "https://hooks.example.org/ledger",
        "event_types": ["RecognitionGiven", "ContributionRecorded"],
        "space": "kaizenblog",
        "description": "thank people in the chat",
    },
    "UpdateWebhook": {"enabled": True},
}

MEMBER_EXAMPLE = {
    "id": "c1328b0c-0e7b-50c1-9d32-cf9fa38d417d",
    "display_name": "Yann Ropars",
    "handles": ["twitter:@yannr"],
    "joined_at": "2009-08-23T23:00:00Z",
    "bio": "",
    "links": [],
    "status": "occasional",
    "first_active_at": "2009-08-23T23:18:00Z",
    "last_active_at": "2009-08-23T23:25:00Z",
    "contributions_total": 2,
    "contributions_by_kind": {"chat_answer": 1, "chat_question": 1},
    "introductions_made": 0,
    "introductions_received": 0,
    "mentions_given": 0,
    "mentions_received": 1,
    "recognitions_given": 0,
    "recognitions_received": 1,
    "connections": 1,
    "merged_into": None,
    "forgotten": False,
}
EVENT_EXAMPLE = {
    "position": 42,
    "event_id": "0194b3c2-8a1f-7d11-8e2a-3c4b5d6e7f80",
    "type": "ContributionRecorded",
    "schema_version": 1,
    "data": {
        "contribution_id": "0194b3c2-8a1e-7c3d-9f00-5b2a1c9d4e6f",
        "member_id": "c1328b0c-0e7b-50c1-9d32-cf9fa38d417d",
        "kind": "chat_answer",
        "space": "kaizenblog",
        "title": "",
        "body": "What makes a good community leader?",
        "url": "",
        "attributes": {"question": "Q4"},
        "reply_to": None,
    },
    "metadata": {"source": "api", "api_key_id": "0194b3c2-7f00-7a41-9c1e-2d3e4f5a6b7c"},
    "stream": "contribution-0194b3c2-8a1e-7c3d-9f00-5b2a1c9d4e6f",
    "stream_version": 1,
    "tags": ["member:c1328b0c-0e7b-50c1-9d32-cf9fa38d417d", "space:kaizenblog"],
    "occurred_at": "2009-08-23T23:25:00Z",
    "recorded_at": "2026-11-28T16:00:00Z",
}
EXPORT_EXAMPLE = {
    "member_id": MEMBER_EXAMPLE["id"],
    "exported_at": "2026-11-28T16:00:00Z",
    "members": [MEMBER_EXAMPLE["id"]],
    "profile": MEMBER_EXAMPLE,
    "events": [EVENT_EXAMPLE],
}
STREAM_EXAMPLE = (
    "retry: 2000\n: events after position 41\n\n"
    f"id: 42\nevent: ContributionRecorded\ndata: {msgspec.json.encode(EVENT_EXAMPLE).decode()}\n\n"
    ": heartbeat\nid: 57\n\n"
)
WEBHOOK_EXAMPLE = {
    "id": "0194b3c2-9b00-7e21-8f3a-4c5d6e7f8091",
    "url": "https://hooks.example.org/ledger",
    "event_types": ["RecognitionGiven", "ContributionRecorded"],
    "member_id": None,
    "space": "kaizenblog",
    "description": "thank people in the chat",
    "enabled": True,
    "disabled_reason": None,
    "position": 42,
    "attempts": 0,
    "next_attempt_at": None,
    "created_at": "2026-11-28T16:00:00Z",
    "updated_at": "2026-11-28T16:00:00Z",
}
WEBHOOK_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DELIVERY_EXAMPLE = {
    "delivery_id": 7,
    "position": 43,
    "event_id": "0194b3c2-8a1f-7d11-8e2a-3c4b5d6e7f80",
    "attempt": 1,
    "status_code": 500,
    "duration_ms": 84.2,
    "error": "HTTP 500",
    "next_attempt_at": "2026-11-28T16:00:05Z",
    "attempted_at": "2026-11-28T16:00:00Z",
}
RESPONSE_EXAMPLES: dict[str, Any] = {
    "CreateWebhook": {**WEBHOOK_EXAMPLE, "secret": WEBHOOK_SECRET_EXAMPLE},
    "ListWebhooks": {"webhooks": [WEBHOOK_EXAMPLE], "next_cursor": None},
    "GetWebhook": WEBHOOK_EXAMPLE,
    "UpdateWebhook": WEBHOOK_EXAMPLE,
    "ReplayWebhook": {**WEBHOOK_EXAMPLE, "position": 0},
    "RotateWebhookSecret": {"id": WEBHOOK_EXAMPLE["id"], "secret": WEBHOOK_SECRET_EXAMPLE},
    "ListWebhookDeliveries": {"deliveries": [DELIVERY_EXAMPLE], "next_cursor": None},
    "ExportMember": EXPORT_EXAMPLE,
    "StreamEvents": STREAM_EXAMPLE,
    "Health": {"status": "ok"},
    "Ready": {"status": "ready", "schema": "0003_api_keys"},
    "Metrics": 'ledger_http_requests_total{method="GET",route="/health",status="200"} 3\n',
    "ReadFeed": {"events": [EVENT_EXAMPLE], "next_after": 42},
    "GetEvent": EVENT_EXAMPLE,
    "GetMember": MEMBER_EXAMPLE,
    "GetMemberByHandle": MEMBER_EXAMPLE,
    "ListMembers": {"members": [MEMBER_EXAMPLE], "next_cursor": "WzIsICJjMTMyOGIwYyJd"},
    "GetMemberHistory": {"events": [EVENT_EXAMPLE], "next_cursor": None},
    "GetMemberConnections": {
        "connections": [
            {
                "member_id": "0e9564d7-0e14-5499-9f2a-bbb844c995ec",
                "display_name": "Valeria Maltoni",
                "weight": 2,
                "introduced_together": 0,
                "introduced": 0,
                "mentioned": 1,
                "recognised": 1,
                "last_at": "2009-08-24T10:00:00Z",
            }
        ],
        "next_cursor": None,
    },
    "ContributionStats": {
        "group_by": ["member"],
        "period": "month",
        "rows": [
            {
                "period_start": "2009-08-01",
                "member_id": "c1328b0c-0e7b-50c1-9d32-cf9fa38d417d",
                "display_name": "Yann Ropars",
                "count": 2,
            }
        ],
    },
    "Leaderboard": {
        "metric": "contributions",
        "window": "30d",
        "since": "2009-08-02",
        "until": "2009-09-01",
        "entries": [
            {
                "rank": 1,
                "member_id": "c1328b0c-0e7b-50c1-9d32-cf9fa38d417d",
                "display_name": "Yann Ropars",
                "value": 2,
            }
        ],
    },
    "ListProjections": [
        {
            "name": "member_profiles",
            "version": 1,
            "live_version": 1,
            "checkpoint": 42,
            "head": 42,
            "lag_events": 0,
            "lag_seconds": 0.0,
            "state": "caught up",
            "owner": "host:4093",
            "rebuild_position": None,
            "error": None,
        }
    ],
    "RebuildProjection": {
        "name": "member_profiles",
        "version": 1,
        "live_version": 1,
        "checkpoint": 42,
        "head": 42,
        "lag_events": 0,
        "lag_seconds": 0.0,
        "state": "rebuilding",
        "owner": "host:4093",
        "rebuild_position": 0,
        "error": None,
    },
}

WRITTEN_EXAMPLE = {
    "id": "0194b3c2-8a1e-7c3d-9f00-5b2a1c9d4e6f",
    "event_ids": ["0194b3c2-8a1f-7d11-8e2a-3c4b5d6e7f80"],
    "positions": [42],
    "replayed": False,
}


_FINISHED: dict[tuple[str, ...], OpenAPI] = {}
"""Finished documents by route set. Every app a process builds has the same routes and
the document takes about half a second to generate, so it is made once per process
(a test run builds the app a hundred times)."""


def finish(app: Litestar) -> None:
    """Add the problem responses and examples to the app's document, or hand it the one
    this process already finished for the same routes."""
    plugin = app.plugins.get(OpenAPIPlugin)
    routes = tuple(sorted(plugin.included_routes))
    if (finished := _FINISHED.get(routes)) is not None:
        plugin._openapi = finished
        return
    document = app.openapi_schema
    _FINISHED[routes] = document
    components = document.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas["Problem"] = PROBLEM_SCHEMA
    components.schemas.update(_request_schemas(set(components.schemas)))
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
            operation.security = _narrowest(operation.security)
            _lines(operation)
            _stream(operation)
            _example(operation, path)


def _lines(operation: Any) -> None:
    """The export answers JSONL too, which Litestar's one media type per response cannot say."""
    if operation.operation_id != "ExportMember":
        return
    answer = (operation.responses or {}).get("200")
    if isinstance(answer, OpenAPIResponse) and answer.content is not None:
        answer.content["application/x-ndjson"] = OpenAPIMediaType(
            schema=Schema(
                type="string",  # type: ignore[arg-type]
                description="The export's fields but `events` on the first line, then one "
                "event per line",
            ),
            examples={
                "example": Example(
                    value=msgspec.json.encode(
                        {k: v for k, v in EXPORT_EXAMPLE.items() if k != "events"}
                    ).decode()
                    + "\n"
                    + msgspec.json.encode(EVENT_EXAMPLE).decode()
                    + "\n"
                )
            },
        )


STREAM_EVENT_SCHEMA = Schema(
    type="object",  # type: ignore[arg-type]
    description="One message of the stream, as Server-Sent Events parse it: comments "
    "(heartbeats, the last word) are not messages; an `id`-only message moves the "
    "client's Last-Event-ID over events a filter skipped",
    properties={
        "id": Schema(type="string", description="The event's position"),  # type: ignore[arg-type]
        "event": Schema(type="string", description="The event's type"),  # type: ignore[arg-type]
        "data": Schema(
            type="string",  # type: ignore[arg-type]
            description="The JSON of one item of `GET /v1/events`",
        ),
        "retry": Schema(type="integer", description="Milliseconds before reconnecting"),  # type: ignore[arg-type]
    },
)


def _stream(operation: Any) -> None:
    """Each message of the event stream, described as SSE parsers (and fuzzers) see it."""
    if operation.operation_id != "StreamEvents":
        return
    answer = (operation.responses or {}).get("200")
    if isinstance(answer, OpenAPIResponse) and answer.content is not None:
        for media in answer.content.values():
            media.schema = STREAM_EVENT_SCHEMA


def _narrowest(security: list[Any] | None) -> list[Any] | None:
    """Litestar joins the controller's requirement to the handler's, which would read as
    "either"; a requirement that names a scope (admin) is the one that holds."""
    if not security:
        return security
    scoped = [requirement for requirement in security if any(requirement.values())]
    return scoped or security


def _example(operation: Any, path: str) -> None:
    body = EXAMPLES.get(operation.operation_id or "")
    if body is not None and operation.request_body is not None:
        for media in (operation.request_body.content or {}).values():
            media.examples = {"example": Example(summary=operation.summary, value=body)}
    answer = RESPONSE_EXAMPLES.get(operation.operation_id or "", WRITTEN_EXAMPLE)
    for status, response in (operation.responses or {}).items():
        if status.startswith("2") and isinstance(response, OpenAPIResponse):
            for media in (response.content or {}).values():
                if media.examples is None:
                    media.examples = {"example": Example(value=answer)}


def _request_schemas(names: set[str]) -> dict[str, Any]:
    """The request bodies as msgspec's decoder checks them.

    Litestar's generator drops the limits of list items and of dict keys and values, so a
    client reading its document would send what the server refuses. Plain dicts pass
    through `to_schema` as they are.
    """
    bodies = [t for t in _subclasses(items.Request) if t.__name__ in names]
    _, found = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    return found


def _subclasses(base: type[Any]) -> list[type[Any]]:
    subs: list[type[Any]] = base.__subclasses__()
    return [t for sub in subs for t in (sub, *_subclasses(sub))]
