"""Reactions that must not work (issue 15, fault 1 and deliverable 6), against a real Synapse:
a reaction acts on the very card or draft version it was made under, or is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.cases.lifecycle import ActionRequest
from bot.messages.outbox import Delivery
from bot.messages.views import draft_ref
from bot.model import Action, CaseState, DraftStatus, Event, EventKind
from handlers.matrix.reactions import CARD_REACTIONS, DRAFT_REACTIONS
from handlers.matrix.render import MatrixRendered
from handlers.matrix.transport import MatrixTransport
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer

HEATING = "Третий день нет отопления, батареи ледяные"


async def denied(world: MatrixWorld, actor: str, reason: str | None = None) -> list[Event]:
    assert world.app is not None
    async with world.app.database.uow() as uow:
        events = await uow.events.of_kind(EventKind.DENIED)
    return [
        e
        for e in events
        if e.actor == world_actor(world, actor) and reason in (None, e.payload.get("reason"))
    ]


def world_actor(world: MatrixWorld, name: str) -> str:
    """The actor id events carry: the staff id, or a stranger's Matrix id."""
    return world.users[name].user_id if name == "stranger" else name


async def draft_event(world: MatrixWorld, case_id: int, version: int) -> str:
    assert world.app is not None
    room = world.rooms["housing"]

    async def lookup() -> str | None:
        assert world.app is not None
        async with world.app.database.uow() as uow:
            return await uow.refs.get("matrix", room, draft_ref(case_id, version, "housing"))

    return str(await eventually(lookup))


async def write_draft(world: MatrixWorld, case_id: int, text: str) -> None:
    assert world.app is not None
    spec = world.app.directory.by_staff_id("spec")
    assert spec is not None
    result = await world.app.cases.act(case_id, ActionRequest(Action.DRAFT, text=text), spec)
    assert result.ok


@asynccontextmanager
async def card_edits_held(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncio.Event]:
    """While inside, card edits are held before they reach the homeserver: the room keeps
    showing the card as it was, as for a person whose client has not caught up yet."""
    release = asyncio.Event()
    hold = asyncio.Event()
    edit = MatrixTransport._edit

    async def held_edit(
        transport: MatrixTransport, delivery: Delivery, rendered: MatrixRendered
    ) -> object:
        if hold.is_set() and delivery.item.payload.get("view") == "card":
            await release.wait()
        return await edit(transport, delivery, rendered)

    monkeypatch.setattr(MatrixTransport, "_edit", held_edit)
    hold.set()
    try:
        yield release
    finally:
        release.set()


async def test_fault1_approve_under_an_older_draft_is_refused_as_stale(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case(HEATING)
        card = await world.card_event(case_id)
        await write_draft(world, case_id, "Мы разбираемся, напишите адрес")
        first = await draft_event(world, case_id, 1)
        await eventually(lambda: _has_reaction(world, room, first, "✏️"))
        # The reviewer asks for a change to version 1 and is told to write the note...
        await world.react("appr", room, first, "✏️")

        async def asked_for_the_note() -> bool:
            return any("!правка" in e["content"]["body"] for e in await world.thread(room, card))

        await eventually(asked_for_the_note)
        # ...while the author swaps the text under them.
        await write_draft(world, case_id, "Подменённый текст")
        second = await draft_event(world, case_id, 2)

        # Neither the note nor the approval made for version 1 lands on version 2.
        await world.say("appr", room, "!note Добавьте срок", thread=card)
        await eventually(lambda: denied(world, "appr", "stale_draft"))
        await world.react("appr", room, first, "✅")

        async def both_refused() -> bool:
            return len(await denied(world, "appr", "stale_draft")) == 2

        await eventually(both_refused)
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL
        assert [(d.version, d.status) for d in case.drafts] == [
            (1, DraftStatus.SUPERSEDED),
            (2, DraftStatus.PENDING),
        ]

        async def said_why() -> bool:
            refusals = [
                e
                for e in await world.bot_messages(room)
                if "Черновик v1 устарел" in e["content"]["body"]
            ]
            return len(refusals) == 2

        await eventually(said_why)

        # Approving the version under review still works.
        await world.react("appr", room, second, "✅")

        async def approved() -> bool:
            current = await app.cases.get(case_id)
            return current is not None and current.state is CaseState.APPROVED

        await eventually(approved)
        current = await app.cases.get(case_id)
        assert current is not None and current.approved_draft is not None
        assert current.approved_draft.text == "Подменённый текст"
        assert current.approved_draft.reviewer == "appr" and current.approved_draft.note is None


async def test_fault1_a_card_reaction_made_under_an_older_card_version_is_refused(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case(HEATING)
        card = await world.card_event(case_id)
        duty = app.directory.by_staff_id("duty")
        assert duty is not None
        async with card_edits_held(monkeypatch) as release:
            escalated = await app.cases.act(
                case_id, ActionRequest(Action.ESCALATE, note="жалоба губернатору"), duty
            )
            assert escalated.ok
            # The room still shows version 0: a take pressed there was meant for it.
            await world.react("appr", room, card, "✋")
            await eventually(lambda: denied(world, "appr", "stale"))
            case = await app.cases.get(case_id)
            assert case is not None and (case.state, case.version) == (CaseState.NEW, 1)
            release.set()

        async def said_why() -> bool:
            return any(
                "Карточка устарела" in e["content"]["body"] for e in await world.thread(room, card)
            )

        await eventually(said_why)
        # Once the room shows the current card, a reaction acts.
        await world.react("spec", room, card, "✋")

        async def taken() -> bool:
            current = await app.cases.get(case_id)
            return current is not None and current.assignee == "spec"

        await eventually(taken)


@pytest.mark.parametrize("forger", ["stranger", "other_department", "stale"])
async def test_deliver6_forged_reactions_for_every_action_are_refused_and_audited(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forger: str
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case(HEATING)
        card = await world.card_event(case_id)
        await write_draft(world, case_id, "Мы разбираемся")
        await write_draft(world, case_id, "Мы разбираемся, напишите адрес")
        old_draft, draft = (
            await draft_event(world, case_id, 1),
            await draft_event(world, case_id, 2),
        )
        # Every bot message so far has reached the room (the card edits included).
        await eventually(lambda: _has_reaction(world, room, draft, "✅"))
        who = {"stranger": "stranger", "other_department": "tspec", "stale": "appr"}[forger]

        async with card_edits_held(monkeypatch) as release:
            if forger == "stale":
                # The card changes while the room still shows the one before; the approver
                # reacts on that card and on the draft version that is no longer reviewed.
                duty = app.directory.by_staff_id("duty")
                assert duty is not None
                assert (await app.cases.act(case_id, ActionRequest(Action.ESCALATE), duty)).ok
                draft = old_draft
            case = await app.cases.get(case_id)
            assert case is not None
            presses = [(card, key) for key in CARD_REACTIONS.values()]
            presses += [(draft, key) for key in DRAFT_REACTIONS.values()]
            for target, key in presses:
                await world.react(who, room, target, key)

            async def all_refused() -> bool:
                return len(await denied(world, who)) >= len(presses)

            await eventually(all_refused)
            refused = await denied(world, who)
            assert len(refused) == len(presses)  # each audited, once
            assert {e.case_id for e in refused} == {case_id}
            after = await app.cases.get(case_id)
            assert after is not None
            assert (after.version, after.state, after.drafts) == (
                case.version,
                case.state,
                case.drafts,
            )
            release.set()

        # Refusals are answered in the room; none of them carries the case's content.
        leaked = [
            e["content"]["body"]
            for e in await world.bot_messages(room)
            if HEATING in e["content"].get("body", "")
            and card
            not in (e["event_id"], (e["content"].get("m.relates_to") or {}).get("event_id"))
        ]
        assert leaked == []


def _edited(event: dict[str, object]) -> object:
    """The event an edit replaces (None for anything else)."""
    content = event["content"]
    assert isinstance(content, dict)
    return (content.get("m.relates_to") or {}).get("event_id")


async def _has_reaction(world: MatrixWorld, room: str, event: str, key: str) -> bool:
    return key in await world.bot_reactions(room, event)


async def test_fault6_matrix_status_is_cross_department_only_for_duty_and_coordination(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        await world.open_case(HEATING)
        coordination = world.rooms["coordination"]
        # A transport specialist who is also in the coordination room reads only transport.
        await world.say("tspec", coordination, "!status")
        await world.say("duty", coordination, "/status")

        async def answers() -> list[str] | None:
            bodies = [
                e["content"]["body"]
                for e in await world.bot_messages(coordination)
                if "Открыто" in e["content"]["body"]
            ]
            return bodies if len(bodies) == 2 else None

        tspec, duty = await eventually(answers)
        assert "Транспорт" in tspec and "ЖКХ" not in tspec
        assert "Транспорт" in duty and "ЖКХ" in duty
