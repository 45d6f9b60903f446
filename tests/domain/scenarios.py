"""Given / when / then for the rules: the ledger so far, a command, what it decides."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

import pytest

from domain.commands import Command
from domain.events import ContributionRecorded, Event, MemberRegistered, RecognitionGiven
from domain.ids import new_id
from domain.rules import decide, decide_all
from domain.state import Known, fold

ANA, BO, CY, DEE = new_id(), new_id(), new_id(), new_id()
NOBODY = new_id()

E = TypeVar("E", bound=BaseException)


class Scenario:
    def __init__(self, history: tuple[Event, ...]) -> None:
        self.known = fold(history, Known.empty())

    def when(self, *commands: Command) -> Outcome:
        return Outcome(self.known, commands)


class Outcome:
    def __init__(self, known: Known, commands: tuple[Command, ...]) -> None:
        self.known, self.commands = known, commands

    def decide(self) -> list[Event]:
        if len(self.commands) == 1:
            return decide(self.commands[0], self.known)
        return decide_all(self.commands, self.known)

    def then(self, *expected: Event) -> list[Event]:
        decided = self.decide()
        assert decided == list(expected)
        return decided

    def raises(self, error: type[E], *mentioning: object) -> E:
        """The error, whose message must name every value in `mentioning`."""
        with pytest.raises(error) as caught:
            self.decide()
        for value in mentioning:
            assert str(value) in str(caught.value), f"{value} not named in: {caught.value}"
        return caught.value


def given(*history: Event) -> Scenario:
    return Scenario(history)


def registered(member_id: UUID, *handles: str, name: str = "") -> MemberRegistered:
    return MemberRegistered(
        member_id=member_id, display_name=name or f"member {member_id}", handles=handles
    )


def everyone() -> tuple[MemberRegistered, ...]:
    return (registered(ANA), registered(BO), registered(CY), registered(DEE))


def contribution(contribution_id: UUID, member_id: UUID = ANA) -> ContributionRecorded:
    return ContributionRecorded(
        contribution_id=contribution_id, member_id=member_id, kind="chat_answer", space="kaizenblog"
    )


def recognition(recognition_id: UUID, from_id: UUID = ANA, to_id: UUID = BO) -> RecognitionGiven:
    return RecognitionGiven(
        recognition_id=recognition_id, from_id=from_id, to_id=to_id, kind="kudos"
    )
