"""Input hygiene: names safe to show, handles that cannot pass for another, links without
scripts, dates in bounds, text PostgreSQL can store; and the handles per member cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import hygiene
from domain.commands import LinkHandle, RecordContribution, RegisterMember, UpdateProfile
from domain.errors import HandleAlreadyClaimed, InvalidField, InvalidHandle
from domain.events import HandleLinked, MemberProfileUpdated
from domain.handles import claimable_handle, normalize_handle
from domain.limits import MAX_HANDLES
from domain.state import Known, fold
from tests.domain.scenarios import ANA, BO, given, registered

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def full_width(ascii_text: str) -> str:
    """The same letters from the full-width block (U+FF01..), as some keyboards type them."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in ascii_text)


@pytest.mark.parametrize(
    "name",
    [
        "Ana\u202eSTAEB",  # right-to-left override: shows as someone else
        "Ana\u2066x\u2069",  # isolates
        "Ana\x1b[31mred",  # ESC: a terminal colour code
        "Ana\nBo",
        "Ana\tBo",
        "Ana\x7f",
        "\u200b\u200b",  # zero-width spaces only
        "\u3164",  # Hangul filler: a letter that draws nothing
        "\u2800\u2800",  # braille blanks
        "\u0301\u0301",  # combining marks on nothing
    ],
)
def test_a_display_name_that_hides_or_reorders_text_is_refused(name: str) -> None:
    error = given().when(RegisterMember(member_id=ANA, display_name=name)).raises(InvalidField)

    assert error.field == "display_name"
    assert name not in str(error)


@pytest.mark.parametrize(
    "name", ["Ana López", "Zoë", "李小龙", "محمد", "Ana 👩\u200d💻", "Ana\u00a0Bo", "O'Neil-Smith"]
)
def test_names_in_any_script_with_joiners_and_emoji_are_accepted(name: str) -> None:
    assert hygiene.display_name_problem(name) is None


def test_a_profile_update_applies_the_same_name_rules() -> None:
    given(registered(ANA)).when(UpdateProfile(member_id=ANA, display_name="A\u202eB")).raises(
        InvalidField, "display_name"
    )


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>",
        "vbscript:x",
        "ftp://example.org/f",
        "//example.org",
        "example.org",
        "https://",
        "https:// example.org",
    ],
)
def test_links_other_than_http_and_https_are_refused(link: str) -> None:
    given(registered(ANA)).when(UpdateProfile(member_id=ANA, links=(link,))).raises(
        InvalidField, "links", "http"
    )


def test_http_and_https_links_are_kept_as_written() -> None:
    links = ("https://ana.example/about?x=1#me", "HTTP://Ana.Example")
    given(registered(ANA)).when(UpdateProfile(member_id=ANA, links=links)).then(
        MemberProfileUpdated(member_id=ANA, links=links)
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("github:" + full_width("octocat"), "github:octocat"),
        (full_width("twitter") + ":@" + full_width("yannr"), "twitter:yannr"),
        ("discord:\ufb01sh", "discord:fish"),  # the fi ligature
        ("discord:yannr\u2460", "discord:yannr1"),  # circled digit one
    ],
)
def test_handles_are_compared_after_nfkc(raw: str, key: str) -> None:
    assert normalize_handle(raw) == key


def test_a_full_width_spelling_cannot_claim_a_handle_someone_holds() -> None:
    given(registered(ANA, "github:octocat")).when(
        RegisterMember(
            member_id=BO, display_name="Eve", handles=("github:" + full_width("octocat"),)
        )
    ).raises(HandleAlreadyClaimed, ANA)


@pytest.mark.parametrize(
    "raw", ["discord:y\u0430nnr", "discord:p\u0430yp\u0430l", "reddit:\u0455cott"]
)
def test_a_handle_mixing_scripts_confusably_is_refused(raw: str) -> None:
    given().when(RegisterMember(member_id=ANA, display_name="Eve", handles=(raw,))).raises(
        InvalidHandle, "look alike"
    )
    given(registered(ANA)).when(LinkHandle(member_id=ANA, handle=raw)).raises(
        InvalidHandle, "look alike"
    )


@pytest.mark.parametrize("raw", ["discord:yannr", "discord:иван", "discord:josé", "discord:李小龙"])
def test_a_handle_in_one_script_is_accepted(raw: str) -> None:
    assert claimable_handle(raw).key == raw


def test_a_look_alike_handle_already_in_the_ledger_still_folds_and_is_found() -> None:
    earlier = registered(ANA, "discord:y\u0430nnr")  # recorded before the rule existed

    known = fold([earlier], Known.empty())

    assert known.owner_of(normalize_handle("discord:y\u0430nnr")) == ANA


def test_a_registration_with_more_handles_than_a_member_may_hold_is_refused() -> None:
    handles = tuple(f"github:ana{i}" for i in range(MAX_HANDLES + 1))

    given().when(RegisterMember(member_id=ANA, display_name="Ana", handles=handles)).raises(
        InvalidField, "handles", str(MAX_HANDLES), str(MAX_HANDLES + 1)
    )
    given().when(
        RegisterMember(member_id=ANA, display_name="Ana", handles=handles[:MAX_HANDLES])
    ).decide()


def test_linking_past_the_handles_a_member_may_hold_is_refused() -> None:
    full = registered(ANA, *(f"github:ana{i}" for i in range(MAX_HANDLES - 1)))

    given(full).when(LinkHandle(member_id=ANA, handle="github:last")).then(
        HandleLinked(member_id=ANA, handle="github:last")
    )
    given(full, HandleLinked(member_id=ANA, handle="github:last")).when(
        LinkHandle(member_id=ANA, handle="github:more")
    ).raises(InvalidField, str(MAX_HANDLES))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        NOW + timedelta(days=1, seconds=1),
        datetime(9999, 12, 31, tzinfo=UTC),
    ],
)
def test_a_moment_before_1970_or_more_than_a_day_ahead_is_refused(moment: datetime) -> None:
    with pytest.raises(InvalidField, match="occurred_at"):
        hygiene.require_moment("occurred_at", moment, NOW)


@pytest.mark.parametrize(
    "moment", [datetime(1970, 1, 1, tzinfo=UTC), NOW + timedelta(days=1), NOW - timedelta(days=1)]
)
def test_a_moment_from_1970_to_a_day_ahead_is_accepted(moment: datetime) -> None:
    assert hygiene.require_moment("occurred_at", moment, NOW) == moment


def test_a_moment_without_a_zone_is_taken_as_utc() -> None:
    assert hygiene.require_moment("occurred_at", datetime(2020, 1, 1), NOW) == datetime(
        2020, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "ok\udfffok"])
def test_text_postgresql_cannot_store_is_found_in_any_field_or_key(text: str) -> None:
    in_title = RecordContribution(
        contribution_id=ANA, member_id=ANA, kind="k", space="s", title=text
    )
    in_key = RecordContribution(
        contribution_id=ANA, member_id=ANA, kind="k", space="s", attributes={text: "v"}
    )
    in_value = RegisterMember(member_id=ANA, display_name="Ana", handles=("github:a", text))

    assert hygiene.unstorable_field(in_title) == "title"
    assert hygiene.unstorable_field(in_key) == "attributes"
    assert hygiene.unstorable_field(in_value) == "handles"
    with pytest.raises(InvalidField, match="NUL"):
        hygiene.require_storable(in_title)


def test_ordinary_text_is_storable() -> None:
    command = RecordContribution(
        contribution_id=ANA, member_id=ANA, kind="k", space="s", title="Zoë 👩\u200d💻\nline two"
    )
    assert hygiene.unstorable_field(command) is None
