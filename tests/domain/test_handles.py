"""One handle, however it is written."""

from __future__ import annotations

import pytest

from domain.errors import InvalidHandle, RuleViolation
from domain.handles import normalize_handle, parse_handle
from domain.limits import MAX_HANDLE


@pytest.mark.parametrize(
    "raw", ["twitter:@CASUDI", "twitter:casudi", "Twitter:@Casudi", "x:@casudi"]
)
def test_the_ways_of_writing_casudi_are_one_handle(raw: str) -> None:
    assert normalize_handle(raw) == "twitter:casudi"


@pytest.mark.parametrize(
    ("raw", "key", "display"),
    [
        ("twitter:@Note_To_CMO", "twitter:note_to_cmo", "twitter:@Note_To_CMO"),
        ("  X : @yannr ", "twitter:yannr", "twitter:@yannr"),
        ("github:OctoCat", "github:octocat", "github:OctoCat"),
        ("github:@octo-cat", "github:octo-cat", "github:@octo-cat"),
        ("email:Ana@Example.ORG", "email:ana@example.org", "email:Ana@Example.ORG"),
        (
            "mastodon:@Ana@Mastodon.Social",
            "mastodon:ana@mastodon.social",
            "mastodon:@Ana@Mastodon.Social",
        ),
        (
            "mastodon:ana@mastodon.social",
            "mastodon:ana@mastodon.social",
            "mastodon:ana@mastodon.social",
        ),
        ("Discord:@Ana#1234", "discord:ana#1234", "discord:@Ana#1234"),
        ("linkedin:in/Ana-Lopez", "linkedin:in/ana-lopez", "linkedin:in/Ana-Lopez"),
    ],
)
def test_a_handle_has_a_key_and_a_display_form(raw: str, key: str, display: str) -> None:
    handle = parse_handle(raw)
    assert (handle.key, handle.display, str(handle)) == (key, display, display)


def test_the_name_is_kept_as_written_and_the_alias_resolved() -> None:
    handle = parse_handle(" x:@Casudi ")
    assert (handle.platform, handle.name) == ("twitter", "@Casudi")


@pytest.mark.parametrize(
    ("raw", "expected_form"),
    [
        ("casudi", "platform:name"),
        (":casudi", "platform:name"),
        ("1twitter:casudi", "platform must be"),
        ("tw itter:casudi", "platform must be"),
        ("twitter:", "twitter:@name"),
        ("twitter:@", "twitter:@name"),
        ("twitter:@casu di", "twitter:@name"),
        ("twitter:@abcdefghijklmnop", "1-15"),
        ("twitter:@@casudi", "twitter:@name"),
        ("twitter:@café", "twitter:@name"),
        ("github:-octocat", "not starting with '-'"),
        ("github:octo_cat", "github:name"),
        ("github:" + "a" * 40, "1-39"),
        ("email:ana", "email:name@example.org"),
        ("email:@example.org", "email:name@example.org"),
        ("email:ana@", "email:name@example.org"),
        ("email:a@b@example.org", "email:name@example.org"),
        ("email:ana @example.org", "email:name@example.org"),
        ("mastodon:ana", "mastodon:@user@instance.social"),
        ("mastodon:@ana@", "mastodon:@user@instance.social"),
        ("mastodon:@ana@localhost", "mastodon:@user@instance.social"),
        ("discord:", "1-100"),
        ("discord:" + "a" * 101, "1-100"),
        ("discord:ana lopez", "without spaces"),
        ("discord:ana\x00", "control characters"),
        ("discord:an\u200ba", "control characters"),
    ],
)
def test_an_invalid_handle_says_what_form_is_expected(raw: str, expected_form: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(raw)
    assert expected_form in str(caught.value)
    name = raw.partition(":")[2].strip("@ ")
    message = str(caught.value).replace(expected_form, "")
    assert len(name) < 3 or name not in message, "the message names the form, not the handle"
    assert caught.value.raw == raw
    assert isinstance(caught.value, RuleViolation)


def test_other_platforms_compare_composed_and_decomposed_letters_as_one() -> None:
    assert normalize_handle("discord:Cafe\u0301") == normalize_handle("discord:café")


def test_a_handle_longer_than_the_limit_is_refused_whatever_its_platform() -> None:
    at_limit = "email:" + "a" * (MAX_HANDLE - len("email:@example.org")) + "@example.org"
    assert len(at_limit) == MAX_HANDLE
    assert parse_handle(at_limit).platform == "email"

    with pytest.raises(InvalidHandle, match=f"at most {MAX_HANDLE} characters, got 201"):
        parse_handle("e" + at_limit)
