"""Who a trailer names: every shape of `Name <addr>` found in the wild, and names compared."""

from __future__ import annotations

import pytest

from services.importers.people import People, Person, name_key, parse_credit


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("Ana Lima <ana@example.org>", ("Ana Lima", "ana@example.org")),
        ("<ana@example.org>", ("", "ana@example.org")),
        ("douglas.fuller@gmail.com", ("", "douglas.fuller@gmail.com")),
        ("Ana Lima ana@example.org.", ("Ana Lima", "ana@example.org")),
        ("Karen Huang (via GitHub)", ("Karen Huang", "")),
        ("Ana Lima <ana@example.org> (maintainer)", ("Ana Lima", "ana@example.org")),
        ('"Lima, Ana" <ana@example.org>', ("Lima, Ana", "ana@example.org")),
        (
            '"Ana \\"the\\" Lima (sic)" <ana@example.org>',
            ('Ana "the" Lima (sic)', "ana@example.org"),
        ),
        ("  José   Müller  ", ("José Müller", "")),
        ("Stable <stable@vger.kernel.org> # 6.1.x", ("Stable", "stable@vger.kernel.org")),
        ("Ana <ana> (no domain)", ("Ana", "")),
        ("Ana <ana@one@example.org>", ("Ana", "")),
        ('brian m. carlson" <sandals@example.org>', ("brian m. carlson", "sandals@example.org")),
        ("Jo Nieder <jo <at> example.org>", ("Jo Nieder", "")),
        ("@octocat", ("@octocat", "")),
        ("(anonymous)", ("", "")),
    ],
)
def test_a_trailer_value_names_a_person_by_address_or_by_name(
    value: str, named: tuple[str, str]
) -> None:
    assert parse_credit(value) == named


def test_names_compare_without_case_spacing_or_how_accents_are_encoded() -> None:
    assert name_key(" Jose\u0301   MU\u0308LLER ") == name_key("José Müller") == "josé müller"


def test_a_name_two_people_go_by_finds_both_and_an_address_without_a_name_gets_one() -> None:
    people = People()
    people.add(Person("Sam Lee", "sam@one.example"))
    people.add(Person("Sam Lee", "SAM@two.example"), ["Samuel"])
    people.add(Person("", "sam@one.example"))

    assert [p.key for p in people.named("sam lee")] == ["sam@one.example", "sam@two.example"]
    assert people.named("Samuel") == [Person("Sam Lee", "SAM@two.example")]
    assert people.name_of(Person("", "Sam@One.example")) == Person("Sam Lee", "Sam@One.example")
