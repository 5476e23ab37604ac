"""Matrix on par with Telegram (issue 18), against a real Synapse whose rooms are of its default
version (12: room ids without a server part): 📝 asks for the draft in the card's thread, ⏫
asks for the reason, 📋 templates, ✏️ with "!note", ❌, "!published", 📣, "!merge", a private
room with staff for "!status" and "!case", a room named by its alias, and the queue message
under the homeserver's rate limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.cases.replies import telegram_comment_id
from bot.model import CaseState, DraftStatus, EventKind
from handlers.app import CannotStart, with_room_ids
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import SCALE, TOKEN


async def _bot_said(world: MatrixWorld, room: str, root: str, words: str) -> dict[str, Any]:
    """The bot's message in a thread that has these words (waits for it)."""

    async def probe() -> dict[str, Any] | None:
        for event in await world.thread(room, root):
            if event["sender"] == world.bot.user_id and words in event["content"].get("body", ""):
                return event
        return None

    found: dict[str, Any] = await eventually(probe)
    return found


async def _bot_says_in_room(
    world: MatrixWorld, room: str, words: str, who: str = "duty"
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        for event in await world.bot_messages(room, who):
            if words in event["content"].get("body", ""):
                return event
        return None

    found: dict[str, Any] = await eventually(probe)
    return found


async def _state(world: MatrixWorld, case_id: int, state: CaseState) -> bool:
    assert world.app is not None
    case = await world.app.cases.get(case_id)
    return case is not None and case.state is state


async def _reacts_when_current(
    world: MatrixWorld, who: str, case_id: int, key: str, department: str = "housing"
) -> None:
    """React under the card once the room shows it as it stands and offers `key`, as a person
    would."""
    room = world.rooms[department]
    card = await world.card_event(case_id, department)

    async def ready() -> bool:
        current = await world.card_is_current(case_id, department)
        return current and key in await world.bot_reactions(room, card)

    await eventually(ready)
    await world.react(who, room, card, key)


async def _draft_event(world: MatrixWorld, room: str, card: str, version: int) -> str:
    event = await _bot_said(world, room, card, f"📝 Черновик v{version}")
    draft = str(event["event_id"])
    await eventually(lambda: _has(world.bot_reactions(room, draft), "✅"))
    return draft


async def _has(reactions: Any, key: str) -> bool:
    return key in await reactions


async def test_draft_by_reaction_note_reject_template_and_published(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        assert ":" not in room  # the homeserver's default room version, 12
        case_id = await world.open_case()
        card = await world.card_event(case_id)
        await _reacts_when_current(world, "spec", case_id, "✋")
        await eventually(lambda: _state(world, case_id, CaseState.TAKEN))

        # 📝: the bot asks in the card's thread; the presser's next message is the draft.
        # Another person's message there in between is conversation.
        await _reacts_when_current(world, "spec", case_id, "📝")
        await _bot_said(world, room, card, "напишите ответ автору следующим сообщением")
        await world.say("appr", room, "Коллеги, я посмотрю", thread=card)
        await world.say("spec", room, "Мы разбираемся, бригада выедет сегодня", thread=card)
        draft_v1 = await _draft_event(world, room, card, 1)
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL
        assert [(d.version, d.author, d.text) for d in case.drafts] == [
            (1, "spec", "Мы разбираемся, бригада выедет сегодня")
        ]

        # ✏️ under the draft, then "!note" in the card's thread sends it back.
        await world.react("appr", room, draft_v1, "✏️")
        await _bot_said(world, room, card, "!правка")
        await world.say("appr", room, "!note Добавьте срок", thread=card)
        await eventually(lambda: _state(world, case_id, CaseState.CHANGES_REQUESTED))
        case = await app.cases.get(case_id)
        assert case is not None and case.drafts[0].note == "Добавьте срок"

        # v2 typed with "!draft" (a second 📝 from the same person would need their first
        # one taken back: Matrix keeps one reaction per key and person); ❌ asks for the
        # reason, "!reject …" gives it, and the case goes back to its owner.
        await world.say("spec", room, "!draft Бригада выедет сегодня до 18:00", thread=card)
        draft_v2 = await _draft_event(world, room, card, 2)
        await world.react("appr", room, draft_v2, "❌")
        await world.say("appr", room, "!reject Ответим по существу", thread=card)
        await eventually(lambda: _state(world, case_id, CaseState.TAKEN))
        case = await app.cases.get(case_id)
        assert case is not None and case.drafts[-1].status is DraftStatus.REJECTED

        # 📋: the templates are listed in the thread; the number writes draft v3 from one.
        await _reacts_when_current(world, "spec", case_id, "📋")
        await _bot_said(world, room, card, "ответьте в этой ветке номером")
        await world.say("spec", room, "1", thread=card)

        async def templated() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and len(case.drafts) == 3

        await eventually(templated)
        case = await app.cases.get(case_id)
        assert case is not None and case.drafts[-1].template_id
        if case.state is CaseState.AWAITING_APPROVAL:  # a template that needs approval
            draft_v3 = await _draft_event(world, room, card, 3)
            await world.react("appr", room, draft_v3, "✅")
        await eventually(lambda: _state(world, case_id, CaseState.APPROVED))

        # "!published <link>" in the thread: published by hand, with its public link.
        link = "https://vk.com/wall-1_1?reply=77"
        await world.say("spec", room, f"!published {link}", thread=card)
        await eventually(lambda: _state(world, case_id, CaseState.PUBLISHED))
        case = await app.cases.get(case_id)
        assert case is not None and case.published_url == link


async def test_escalate_asks_for_the_reason_and_merge(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room, coordination = world.rooms["housing"], world.rooms["coordination"]
        case_id = await world.open_case()
        other_id = await world.open_case("Во дворе прорвало трубу, вода заливает подвал")
        card = await world.card_event(case_id)

        # ⏫ no longer escalates at once: it asks for the reason in the thread.
        await _reacts_when_current(world, "spec", case_id, "⏫")
        await _bot_said(world, room, card, "почему эскалируем")
        case = await app.cases.get(case_id)
        assert case is not None and case.escalation_level == 0
        await world.say("spec", room, "Нужна помощь руководства: аварийная бригада", thread=card)

        async def escalated() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.escalation_level == 1

        await eventually(escalated)
        notice = await _bot_says_in_room(world, coordination, "Эскалация (уровень 1)")
        assert "аварийная бригада" in notice["content"]["body"]
        # The question was answered once: more talk in the thread is conversation.
        await world.say("spec", room, "Спасибо", thread=card)

        # "!merge A B" (administrators): two author cards become one.
        async with app.database.uow() as uow:
            (first,) = await uow.mentions.for_case(case_id)
            (second,) = await uow.mentions.for_case(other_id)
        keep, gone = first.author_id, second.author_id
        assert keep is not None and gone is not None and keep != gone
        await world.say("admin", coordination, f"!merge {keep} {gone}")
        merged = await _bot_says_in_room(world, coordination, "Карточки авторов объединены")
        assert f"{gone} → {keep}" in merged["content"]["body"]
        case = await app.cases.get(case_id)
        assert case is not None and case.escalation_level == 1  # "Спасибо" did nothing


async def test_a_private_room_with_staff_answers_status_and_case(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        case_id = await world.open_case()
        await world.card_event(case_id)
        duty, spec = world.users["duty"], world.users["spec"]
        # The duty officer and a housing specialist each invite the bot to a room of their own.
        duty_room = synapse.create_room(duty.access_token, "Дежурный", invite=[world.bot.user_id])
        spec_room = synapse.create_room(spec.access_token, "Анна", invite=[world.bot.user_id])

        async def joined() -> bool:
            duty_in = await world.bot_membership(duty_room, "duty")
            return duty_in == "join" and await world.bot_membership(spec_room, "spec") == "join"

        await eventually(joined)

        # !status: the duty officer sees every department, the specialist their own.
        await world.say("duty", duty_room, "!status")
        duty_status = await _bot_says_in_room(world, duty_room, "ЖКХ")
        assert "Транспорт" in duty_status["content"]["body"]
        await world.say("spec", spec_room, "!status")
        spec_status = await _bot_says_in_room(world, spec_room, "ЖКХ", "spec")
        assert "Транспорт" not in spec_status["content"]["body"]
        await world.say("spec", spec_room, f"!case {case_id}")
        await _bot_says_in_room(world, spec_room, "История", "spec")

        # Once somebody who is no staff is in the room, it is no private room any more:
        # commands there are ignored (and audited), as in any chat that is not a work chat.
        synapse.invite(duty.access_token, duty_room, world.users["stranger"].user_id)
        synapse.join(world.users["stranger"].access_token, duty_room)
        before = len(await world.bot_messages(duty_room))
        await world.say("stranger", duty_room, "привет")
        await world.say("duty", duty_room, "!status")

        async def ignored() -> bool:
            async with app.database.uow() as uow:
                denied = await uow.events.of_kind(EventKind.DENIED.value)
            return any(e.payload.get("chat") == duty_room for e in denied)

        await eventually(ignored)
        assert len(await world.bot_messages(duty_room)) == before

        # Private rooms are nobody's business in `otklik chats`: only the configured rooms.
        await app.chats.drain()
        seen = {c.chat for c in await app.chats.all()}
        assert duty_room not in seen and spec_room not in seen
        assert seen <= set(world.rooms.values())


async def test_a_room_named_by_its_alias(synapse: SynapseServer, tmp_path: Path) -> None:
    async with matrix_world(synapse, tmp_path, aliased=("housing",)) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        assert world.aliases["housing"].startswith("#press-housing-")
        # Resolved at start: everything inside is keyed by the room id.
        assert app.directory.department_at("matrix", room) == "housing"
        case_id = await world.open_case()
        card = await world.card_event(case_id)
        assert f"Кейс №{case_id}" in await world.current_text(room, card)
        await _reacts_when_current(world, "spec", case_id, "✋")
        await eventually(lambda: _state(world, case_id, CaseState.TAKEN))

        # An alias that names no room: the start fails, saying which alias and why.
        world.aliases["transport"] = f"#nowhere:{synapse.server_name}"
        with pytest.raises(CannotStart) as error:
            await with_room_ids(world.config())
        assert "#nowhere:otklik.test" in str(error.value)
        assert "M_NOT_FOUND" in str(error.value)


async def test_a_backlog_gets_a_queue_message_within_the_servers_rate_limit(
    tmp_path: Path,
) -> None:
    # A server of its own with a low message limit, and the bot configured to match it.
    # The room takes 7 new cards a minute at this rate (8 events each): 10 are a backlog.
    limit = {"per_second": 1, "burst_count": 10}
    with SynapseServer(tmp_path / "synapse", overrides={"rc_message": limit}) as server:
        rate_limit = {"per_second": 1, "burst": 10}
        async with matrix_world(server, tmp_path, rate_limit=rate_limit) as world:
            app = world.app
            assert app is not None
            room = world.rooms["housing"]
            assert app.transports["matrix"].capacity_per_minute(room) == 7  # type: ignore[attr-defined]
            for n in range(10):
                await world.open_case(f"Нет отопления в доме {n + 1}")
            queue = await _bot_says_in_room(world, room, "Очередь:")
            assert "сервера Matrix" in queue["content"]["body"]
            assert "!case" in queue["content"]["body"]
            # The bot kept under the limit: nothing was refused with M_LIMIT_EXCEEDED.
            assert app.worker.stats.retried == 0


async def test_publish_by_reaction_answers_under_the_citizens_telegram_comment(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    # The department works in Matrix; the complaint came as a comment in the organisation's
    # Telegram discussion group, where the bot can answer: 📣 under the Matrix card.
    server = TelegramServer(Limits(time_scale=SCALE))
    await server.start()
    try:
        server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=True)
        citizen = server.create_user("Пётр", id=7777)
        channel = server.create_channel("Новости области")
        discussion = server.create_chat("supergroup", "Обсуждение новостей").id
        server.link_discussion(channel.id, discussion)
        telegram = (
            f'telegram: {{token: "{TOKEN}", api_base: "{server.api_base}", '
            f"limits: {{scale: {SCALE}}}, "
            f"discussion_groups: [{{chat_id: {discussion}, name: Обсуждение новостей}}]}}\n"
        )
        async with matrix_world(synapse, tmp_path, extra_config=telegram) as world:
            app = world.app
            assert app is not None
            room = world.rooms["housing"]
            text = "Третий день нет горячей воды! Когда наконец дадут?!"
            comment = server.send_user_message(discussion, citizen, text)
            key = telegram_comment_id(discussion, comment.message_id)

            async def opened() -> int | None:
                async with app.database.uow() as uow:
                    mention = await uow.mentions.get_by_external("telegram", key)
                return mention.case_id if mention is not None else None

            case_id: int = await eventually(opened)
            card = await world.card_event(case_id)
            await _reacts_when_current(world, "spec", case_id, "✋")
            answer = "Мы разбираемся, воду дадут до 18:00"
            await world.say("spec", room, f"!draft {answer}", thread=card)
            draft = await _draft_event(world, room, card, 1)
            await world.react("appr", room, draft, "✅")
            await eventually(lambda: _state(world, case_id, CaseState.APPROVED))

            await _reacts_when_current(world, "spec", case_id, "📣")
            await eventually(lambda: _state(world, case_id, CaseState.PUBLISHED))

            def public() -> list[str]:
                return [
                    m.text or ""
                    for m in server.messages(discussion)
                    if m.bot_id is not None and m.reply_to_message_id == comment.message_id
                ]

            async def answered() -> bool:
                return bool(public())

            await eventually(answered)
            assert public() == [answer]
    finally:
        await server.stop()
