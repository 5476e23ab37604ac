"""The same workflow in Matrix, against a real Synapse, people driven by matrix-nio clients."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.views import card_ref
from bot.model import CaseState, EventKind, Outcome
from handlers.matrix.transport import MatrixTransport
from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer


async def test_card_take_draft_approve_publish_close(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case()
        card = await world.card_event(case_id)
        assert f"Кейс №{case_id}" in await world.current_text(room, card)
        await eventually(lambda: _has(world.bot_reactions(room, card), "✋"))

        await world.react("spec", room, card, "✋")
        await eventually(lambda: _contains(world.current_text(room, card), "Анна Иванова"))
        await eventually(lambda: _has(world.bot_reactions(room, card), "👋"))

        # A draft is a thread reply to the card; the bot posts it for review in the thread.
        await world.say("spec", room, "!draft Мы разбираемся, напишите адрес", thread=card)

        async def draft_post() -> str | None:
            for event in await world.thread(room, card):
                body = event["content"].get("body", "")
                if event["sender"] == world.bot.user_id and "📝 Черновик v1" in body:
                    return str(event["event_id"])
            return None

        draft = await eventually(draft_post)
        await eventually(lambda: _has(world.bot_reactions(room, draft), "✅"))
        await world.react("spec", room, draft, "✅")  # the author: refused
        await world.react("appr", room, draft, "✅")

        async def approved() -> bool:
            case = await world.app.cases.get(case_id)  # type: ignore[union-attr]
            return case is not None and case.state is CaseState.APPROVED

        await eventually(approved)
        # 📤 appears under the card once the room shows it approved; a person reacts then.
        await eventually(lambda: _has(world.bot_reactions(room, card), "📤"))
        await world.react("spec", room, card, "📤")

        async def published() -> bool:
            case = await world.app.cases.get(case_id)  # type: ignore[union-attr]
            return case is not None and case.state is CaseState.PUBLISHED

        await eventually(published)
        # Close: the bot lists the outcomes in the thread; the number picks one. As a person
        # would, react once the room shows the card as published.
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "✔️")

        async def outcomes_listed() -> bool:
            return any(
                "1." in e["content"].get("body", "")
                for e in await world.thread(room, card)
                if e["sender"] == world.bot.user_id
            )

        await eventually(outcomes_listed)
        await world.say("spec", room, "1", thread=card)

        async def closed() -> bool:
            case = await world.app.cases.get(case_id)  # type: ignore[union-attr]
            return case is not None and case.state is CaseState.CLOSED

        await eventually(closed)
        case = await world.app.cases.get(case_id)
        assert case is not None and case.outcome is Outcome.RESOLVED
        thread = await world.app.cases.thread(case_id)
        assert thread is not None
        denied = [e for e in thread.events if e.kind == EventKind.DENIED]
        assert [e.actor for e in denied] == ["spec"]  # a specialist may not approve at all
        assert case.drafts[0].reviewer == "appr"


async def test_a_reaction_before_the_outbox_records_the_card_is_not_lost(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The card's delivery is held after the message is sent, while its reactions would be
    # added: a quick person reacts before the outbox has recorded the card's event id.
    held = asyncio.Event()
    add_reactions = MatrixTransport._add_reactions

    async def held_card(
        transport: MatrixTransport, item: OutboxItem, target: str, keys: list[str]
    ) -> dict[str, str]:
        if item.op is OutboxOp.POST and item.payload.get("view") == "card":
            await held.wait()
        return await add_reactions(transport, item, target, keys)

    monkeypatch.setattr(MatrixTransport, "_add_reactions", held_card)
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        try:
            case_id = await world.open_case()

            async def posted() -> str | None:
                for event in await world.bot_messages(room):
                    if f"Кейс №{case_id}" in event["content"]["body"]:
                        return str(event["event_id"])
                return None

            card = await eventually(posted)
            await world.react("spec", room, card, "✋")

            async def taken() -> bool:
                case = await app.cases.get(case_id)
                return case is not None and case.state is CaseState.TAKEN

            await eventually(taken)
            async with app.database.uow() as uow:  # the race was really forced
                assert await uow.refs.get("matrix", room, card_ref(case_id, "housing")) is None
        finally:
            held.set()
        assert await world.card_event(case_id) == card
        await eventually(lambda: _contains(world.current_text(room, card), "Анна Иванова"))


async def test_reroute_commands_strangers_and_restart(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case()
        card = await world.card_event(case_id)

        # A stranger's reaction changes nothing and is audited.
        await world.react("stranger", room, card, "✋")

        async def audited() -> bool:
            thread = await world.app.cases.thread(case_id)  # type: ignore[union-attr]
            return thread is not None and any(e.kind == EventKind.DENIED for e in thread.events)

        await eventually(audited)
        case = await world.app.cases.get(case_id)
        assert case is not None and case.state is CaseState.NEW and case.version == 0

        # Reroute: the departments are listed in the thread; the number moves the case.
        await world.react("spec", room, card, "↪️")

        async def listed() -> bool:
            return any(
                "Транспорт" in e["content"].get("body", "") for e in await world.thread(room, card)
            )

        await eventually(listed)
        await world.say("spec", room, "1", thread=card)
        moved = await world.card_event(case_id, "transport")
        assert f"Кейс №{case_id}" in await world.current_text(world.rooms["transport"], moved)
        await eventually(lambda: _contains(world.current_text(room, card), "Передан"))

        # Commands answer in the room.
        coordination = world.rooms["coordination"]
        await world.say("duty", coordination, "!status")
        await world.say("tspec", world.rooms["transport"], f"!escalate {case_id} срочно")
        await world.say("tspec", world.rooms["transport"], f"/case {case_id}")

        async def answered() -> bool:
            status = [
                e
                for e in await world.bot_messages(coordination)
                if "Транспорт" in e["content"]["body"]
            ]
            transport = [
                e["content"]["body"] for e in await world.bot_messages(world.rooms["transport"])
            ]
            return (
                bool(status)
                and any("срочно" in b for b in transport)
                and any("История" in b for b in transport)
            )

        await eventually(answered)
        case = await world.app.cases.get(case_id)
        assert case is not None and case.escalation_level == 1

        # Restart: the commands already handled are not handled again.
        before = len(await world.bot_messages(coordination))
        await world.stop_bot()
        await world.start_bot()
        await world.say("duty", coordination, "!duty")

        async def duty_answered() -> bool:
            return any(
                "Дарья Морозова" in e["content"]["body"]
                for e in await world.bot_messages(coordination)
            )

        await eventually(duty_answered)
        after = await world.bot_messages(coordination)
        assert len(after) == before + 1  # only the new !duty was answered
        case = await world.app.cases.get(case_id)  # type: ignore[union-attr]
        assert case is not None and case.escalation_level == 1


async def _has(reactions: object, key: str) -> bool:
    return key in await reactions  # type: ignore[misc]


async def _contains(text: object, part: str) -> bool:
    return part in await text  # type: ignore[misc]


async def _is(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_foreign_invites_are_declined_and_encrypted_rooms_warned_about(
    synapse: SynapseServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        owner = world.users["duty"]
        # Somebody who is no staff asks the bot in: declined (staff invites are private rooms).
        stranger = world.users["stranger"]
        foreign = synapse.create_room(stranger.access_token, "Чужая", invite=[world.bot.user_id])

        await eventually(lambda: _is(world.bot_membership(foreign, "stranger"), "leave"))

        # A configured room that is encrypted: the bot says so in the log at start. The bot
        # is stopped first: running with the old config, it would rightly decline the invite.
        await world.stop_bot()
        secret = synapse.create_room(
            owner.access_token, "Секретная", encrypted=True, invite=[world.bot.user_id]
        )
        world.rooms["coordination"] = secret
        with caplog.at_level(logging.WARNING, logger="handlers.matrix.adapter"):
            await world.start_bot()
        assert await world.bot_membership(secret) == "join"
        assert any(
            "encrypted" in r.getMessage() and secret in r.getMessage() for r in caplog.records
        )


async def test_a_configured_room_is_joined_when_its_invite_comes_after_the_start(
    synapse: SynapseServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        owner = world.users["duty"]
        late = synapse.create_room(owner.access_token, "Поздняя")  # the bot is not invited yet
        world.rooms["coordination"] = late
        await world.stop_bot()
        with caplog.at_level(logging.WARNING, logger="handlers.matrix.adapter"):
            await world.start_bot()
        assert any(
            "cannot join" in r.getMessage() and late in r.getMessage() for r in caplog.records
        )

        synapse.invite(owner.access_token, late, world.bot.user_id)

        await eventually(lambda: _is(world.bot_membership(late), "join"))
