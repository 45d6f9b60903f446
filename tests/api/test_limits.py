"""The API's limits are the domain's: what the published schema accepts, no rule refuses
for its size, and what the domain refuses the schema refuses first, as a 400 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain import limits as lim
from domain.events import EVENT_TYPES
from services.api.schemas import MAX_BATCH_ITEMS
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]

LIMIT_KEYWORDS = {
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}
MEMBER_REF = {"minLength": 1, "maxLength": lim.MAX_HANDLE}
HANDLES = {"maxItems": lim.MAX_HANDLES, "items": {"maxLength": lim.MAX_HANDLE}}
# Every limit of every request field, written with the domain's constants. A field named
# here by itself has these limits wherever it appears; (schema, field) overrides it.
EXPECTED: dict[str | tuple[str, str], dict[str, Any]] = {
    "display_name": {"minLength": 1, "maxLength": lim.MAX_DISPLAY_NAME},
    ("RecordContributionItem", "display_name"): {"maxLength": lim.MAX_DISPLAY_NAME},
    ("ContributionCreate", "display_name"): {"maxLength": lim.MAX_DISPLAY_NAME},
    "handles": HANDLES,
    "add_handles": HANDLES,
    "remove_handles": HANDLES,
    "bio": {"maxLength": lim.MAX_BIO},
    "links": {"maxItems": lim.MAX_LINKS, "items": {"maxLength": lim.MAX_URL}},
    "title": {"maxLength": lim.MAX_TITLE},
    "body": {"maxLength": lim.MAX_BODY},
    "url": {"maxLength": lim.MAX_URL},
    "reason": {"maxLength": lim.MAX_NOTE},
    "note": {"maxLength": lim.MAX_NOTE},
    "attributes": {
        "maxProperties": lim.MAX_ATTRIBUTES,
        "propertyNames": {"minLength": 1, "maxLength": lim.MAX_ATTRIBUTE_KEY},
        "additionalProperties": {"maxLength": lim.MAX_ATTRIBUTE_VALUE},
    },
    "kind": {"pattern": lim.KIND_PATTERN},
    "space": {"pattern": lim.OPTIONAL_SPACE_PATTERN},
    ("ContributionCreate", "space"): {"pattern": lim.SPACE_PATTERN},
    ("RecordContributionItem", "space"): {"pattern": lim.SPACE_PATTERN},
    **{
        name: MEMBER_REF
        for name in ("member", "mentioned", "from", "to", "introducer", "duplicate", "survivor")
    },
    "introduced": {
        "minItems": lim.MIN_INTRODUCED,
        "maxItems": lim.MAX_INTRODUCED,
        "items": MEMBER_REF,
    },
    # Webhook subscriptions.
    **{
        (body, field): limits
        for body in ("WebhookCreate", "WebhookPatch")
        for field, limits in {
            "url": {"minLength": 1, "maxLength": lim.MAX_URL},
            "space": {"pattern": lim.SPACE_PATTERN},
        }.items()
    },
    "event_types": {
        "minItems": 1,
        "maxItems": len(EVENT_TYPES),
        "items": {"minLength": 1, "maxLength": lim.MAX_EVENT_TYPE},
    },
    "description": {"maxLength": lim.MAX_NOTE},
    "after": {"minimum": 0, "maximum": lim.MAX_POSITION},
    # The API's own limits, not rules of the domain.
    "items": {"minItems": 1, "maxItems": MAX_BATCH_ITEMS},
    "expected_version": {"minimum": 0, "maximum": lim.MAX_POSITION},
}
# Checked by the domain against a closed list (a 422 naming the kinds it knows).
UNLIMITED = {("RecognitionCreate", "kind"), ("GiveRecognitionItem", "kind")}
MOMENTS = {"occurred_at", "joined_at"}
"""Decoded as datetimes: their form bounds them."""


def limits_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The limit keywords of a property, through nullable unions, list items and dicts."""
    found = {key: value for key, value in schema.items() if key in LIMIT_KEYWORDS}
    for variant in schema.get("anyOf", []):
        found |= limits_of(variant)
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), dict) and (inner := limits_of(schema[key])):
            found[key] = inner
    return found


def free_form(schema: dict[str, Any]) -> bool:
    """A string, list or dict a client could make as large as it likes without limits."""
    kinds = [schema, *schema.get("anyOf", [])]
    return any(
        k.get("type") in {"array", "object"}
        or (k.get("type") == "string" and "format" not in k and "enum" not in k)
        for k in kinds
    )


def request_schemas() -> dict[str, dict[str, Any]]:
    document = json.loads((ROOT / "api-spec" / "openapi.json").read_text())
    schemas: dict[str, dict[str, Any]] = document["components"]["schemas"]
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "requestBody" in op
    }
    seen: dict[str, dict[str, Any]] = {}
    todo = list(bodies)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = schemas[name]
        todo += [ref.rsplit("/", 1)[1] for ref in _refs(schemas[name])]
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_limit_of_every_request_field_in_the_openapi_document_is_the_domains() -> None:
    schemas = request_schemas()
    assert {"ContributionCreate", "Batch", "RecordContributionItem"} <= set(schemas)

    unlimited = []
    for name, schema in schemas.items():
        for field, prop in schema["properties"].items():
            if (name, field) in UNLIMITED or field in MOMENTS:
                continue
            expected = EXPECTED.get((name, field), EXPECTED.get(field))
            if expected is None:
                if free_form(prop):
                    unlimited.append(f"{name}.{field}")
                continue
            assert limits_of(prop) == expected, f"{name}.{field}"
    assert not unlimited, f"request fields without a limit from domain.limits: {unlimited}"


def test_the_published_patterns_are_the_ones_the_rules_match() -> None:
    from domain import checks

    assert checks.KIND.pattern == lim.KIND_PATTERN
    assert checks.SPACE.pattern == lim.SPACE_PATTERN


def _kind(length: int) -> str:
    return "k" * length


CONTRIBUTION = {"member": "github:ana", "kind": "chat_answer", "space": "kaizenblog"}
RECOGNITION = {"from": "github:ana", "to": "github:bo", "kind": "kudos"}
INTRODUCTION = {"introducer": "github:ana", "introduced": ["github:bo", "github:cy"]}
# (path, body without the field, field, value at the limit, value just past it)
AT_AND_PAST = [
    ("/v1/contributions", CONTRIBUTION, "title", "t" * lim.MAX_TITLE, "t" * (lim.MAX_TITLE + 1)),
    ("/v1/contributions", CONTRIBUTION, "body", "b" * lim.MAX_BODY, "b" * (lim.MAX_BODY + 1)),
    ("/v1/contributions", CONTRIBUTION, "url", "u" * lim.MAX_URL, "u" * (lim.MAX_URL + 1)),
    ("/v1/contributions", CONTRIBUTION, "kind", _kind(lim.MAX_KIND), _kind(lim.MAX_KIND + 1)),
    ("/v1/contributions", CONTRIBUTION, "space", "s" * lim.MAX_SPACE, "s" * (lim.MAX_SPACE + 1)),
    ("/v1/contributions", CONTRIBUTION, "kind", "chat_answer", "Chat_Answer"),
    (
        "/v1/contributions",
        CONTRIBUTION,
        "attributes",
        {f"q{i}": "v" * lim.MAX_ATTRIBUTE_VALUE for i in range(lim.MAX_ATTRIBUTES)},
        {f"q{i}": "v" for i in range(lim.MAX_ATTRIBUTES + 1)},
    ),
    (
        "/v1/contributions",
        CONTRIBUTION,
        "attributes",
        {"k" * lim.MAX_ATTRIBUTE_KEY: "v"},
        {"k" * (lim.MAX_ATTRIBUTE_KEY + 1): "v"},
    ),
    ("/v1/recognitions", RECOGNITION, "reason", "r" * lim.MAX_NOTE, "r" * (lim.MAX_NOTE + 1)),
    ("/v1/introductions", INTRODUCTION, "note", "n" * lim.MAX_NOTE, "n" * (lim.MAX_NOTE + 1)),
    ("/v1/introductions", INTRODUCTION, "space", "", "Kaizenblog"),
    (
        "/v1/members",
        {},
        "display_name",
        "d" * lim.MAX_DISPLAY_NAME,
        "d" * (lim.MAX_DISPLAY_NAME + 1),
    ),
    (
        "/v1/members",
        {"display_name": "Dee"},
        "handles",
        ["email:" + "d" * (lim.MAX_HANDLE - len("email:@example.org")) + "@example.org"],
        ["email:" + "d" * (lim.MAX_HANDLE + 1 - len("email:@example.org")) + "@example.org"],
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "field", "at_limit", "past_limit"),
    AT_AND_PAST,
    ids=[f"{path}:{field}:{i}" for i, (path, _, field, _, _) in enumerate(AT_AND_PAST)],
)
async def test_a_field_at_its_limit_is_written_and_past_it_is_a_400_naming_the_field(
    client: Client,
    writer: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
    at_limit: Any,
    past_limit: Any,
) -> None:
    for name in ("ana", "bo", "cy"):
        member = {"display_name": name, "handles": [f"github:{name}"]}
        registered = await client.post("/v1/members", json=member, headers=writer)
        assert registered.status_code == 201, registered.text

    accepted = await client.post(path, json={**body, field: at_limit}, headers=writer)
    refused = await client.post(path, json={**body, field: past_limit}, headers=writer)

    assert accepted.status_code == 201, accepted.text
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    errors = refused.json()["errors"]
    assert any(error["field"].startswith(field) for error in errors), errors


async def test_an_introduction_of_the_most_members_is_written_and_one_more_is_a_400(
    client: Client, writer: dict[str, str]
) -> None:
    names = [f"github:m{i}" for i in range(lim.MAX_INTRODUCED + 2)]
    batch = [{"command": "register_member", "display_name": n, "handles": [n]} for n in names]
    registered = await client.post("/v1/batch", json={"items": batch}, headers=writer)
    assert registered.status_code == 201, registered.text

    most = {"introducer": names[0], "introduced": names[1 : lim.MAX_INTRODUCED + 1]}
    accepted = await client.post("/v1/introductions", json=most, headers=writer)
    refused = await client.post(
        "/v1/introductions", json={**most, "introduced": names[1:]}, headers=writer
    )

    assert accepted.status_code == 201, accepted.text
    assert refused.status_code == 400, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == ["introduced"]
