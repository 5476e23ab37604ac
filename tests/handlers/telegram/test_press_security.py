"""Presses and commands that must not work (issue 15, faults 2 and 6, deliverable 6): the real
aiogram dispatcher polling the Telegram test server, people forging callback data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cases.cards import MENU_ACTIONS, REVIEW_ACTIONS
from bot.cases.lifecycle import ActionRequest
from bot.model import Action, Event, EventKind, IgnoreReason, Outcome, WaitReason
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

HEATING = "Третий день нет отопления, батареи ледяные"
BUS = "Автобус 12 не пришёл, ждали час на остановке"
# A valid argument for every menu choice, so that only the presser or the version is wrong.
MENU_ARGS = {
    Action.USE_TEMPLATE: "first-touch",
    Action.REROUTE: "transport",
    Action.CLOSE: Outcome.RESOLVED.value,
    Action.IGNORE: IgnoreReason.SPAM.value,
    Action.WAIT_FOR_AUTHOR: next(iter(WaitReason)).value,
}


def forged_data(case_id: int, card_version: int, draft_version: int) -> list[str]:
    """Callback data for every action a card or a draft offers, in every format
    (handlers/telegram/callbacks.py): c:<case>:<v>:<action>:<arg>, m:<case>:<v>:<menu>
    (and the empty menu: "back"), d:<case>:<draft version>:<review action>."""
    data = []
    for action in Action:
        if action in REVIEW_ACTIONS:
            data.append(f"d:{case_id}:{draft_version}:{action.value}")
            continue
        data.append(f"c:{case_id}:{card_version}:{action.value}:{MENU_ARGS.get(action, '')}")
        if action in MENU_ACTIONS:
            data.append(f"m:{case_id}:{card_version}:{action.value}")
    data.append(f"m:{case_id}:{card_version}:")  # "back" to the main buttons
    return data


def malformed_data(case_id: int, card_version: int, draft_version: int) -> list[str]:
    """Data no button carries, for every action: the action in a format it never comes in, an
    argument where none belongs, a choice that is none, an action that is none."""
    v, d = card_version, draft_version
    data = []
    for action in Action:
        if action in REVIEW_ACTIONS:
            data.append(f"c:{case_id}:{v}:{action.value}:")  # review buttons sit under drafts
        elif action in MENU_ACTIONS:
            data.append(f"c:{case_id}:{v}:{action.value}:nope")  # no such choice
        else:
            data.append(f"c:{case_id}:{v}:{action.value}:x")  # only menu choices carry one
            data.append(f"m:{case_id}:{v}:{action.value}")  # no menu
            data.append(f"d:{case_id}:{d}:{action.value}")  # no review action
    data.append(f"c:{case_id}:{v}:nope:")
    return data


def bot_messages(world: World, chat: int) -> list[StoredMessage]:
    return [m for m in world.server.messages(chat) if m.bot_id is not None]


async def denied(world: World) -> list[Event]:
    async with world.app.database.uow() as uow:
        return await uow.events.of_kind(EventKind.DENIED)


async def test_fault2_a_forged_back_press_in_another_chat_shows_no_card_and_is_audited(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        housing_case = await world.open_case(HEATING)
        transport_case = await world.open_case(BUS)
        await world.card(housing_case)
        transport_card = await world.card(transport_case, "transport")
        await world.idle()
        seen = [(m.message_id, m.text) for m in bot_messages(world, world.transport)]

        # A non-staff member, a transport specialist and a housing specialist who is also in
        # the transport chat: "back" with the housing case's id, pressed in the transport chat.
        for who in ("stranger", "tspec", "spec"):
            answer = await world.forge(who, transport_card, f"m:{housing_case}:0:")
            assert answer.get("show_alert"), who
            assert "Готово" not in str(answer.get("text")), who
        await world.idle()

        after = [(m.message_id, m.text) for m in bot_messages(world, world.transport)]
        assert after == seen  # no housing card posted, the transport card not redrawn
        assert not any(HEATING in (text or "") for _, text in after)
        case = await world.case(housing_case)
        assert case.version == 0
        refused = [e for e in await denied(world) if e.case_id == housing_case]
        assert sorted(e.actor for e in refused) == ["spec", "tg:6666", "tspec"]


async def test_fault6_commands_outside_work_chats_are_ignored_and_audited_once(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        citizen = world.person("citizen")
        asked = [world.say("citizen", world.discussion, c) for c in ("/duty", "/help", "/whoami")]
        asked.append(world.server.send_user_message(citizen.id, citizen, "/help"))
        asked.append(world.server.send_user_message(citizen.id, citizen, "/duty"))
        # The bot is alive and answers where it should.
        control = world.say("spec", world.housing, "/whoami", thread=world.topic)
        assert "Анна Иванова" in ((await world.answer_to(control)).text or "")
        await world.idle()

        for chat in (world.discussion, citizen.id):
            answers = bot_messages(world, chat)
            assert answers == [], [m.text for m in answers]
        ignored = [e for e in await denied(world) if e.payload.get("reason") == "not_a_work_chat"]
        # Once per chat, however many commands came from there.
        assert sorted(e.payload["chat"] for e in ignored) == sorted(
            [str(world.discussion), str(citizen.id)]
        )
        assert all(e.actor == "tg:7777" and e.case_id is None for e in ignored)
        assert len(asked) == 5


async def test_fault6_status_in_private_is_cross_department_only_for_duty(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        housing_case = await world.open_case(HEATING)
        transport_case = await world.open_case(BUS)
        spec = world.person("spec")
        asked = world.server.send_user_message(spec.id, spec, "/status")
        text = (await world.answer_to(asked)).text or ""
        assert "ЖКХ" in text and "Транспорт" not in text and "ЦУР" not in text

        duty = world.person("duty")
        asked = world.server.send_user_message(duty.id, duty, "/status")
        text = (await world.answer_to(asked)).text or ""
        assert "ЖКХ" in text and "Транспорт" in text and "ЦУР" in text

        # A department chat still shows its own department to whoever asks there.
        asked = world.say("tspec", world.transport, "/status")
        text = (await world.answer_to(asked)).text or ""
        assert "Транспорт" in text and "ЖКХ" not in text

        # /case N is cross-department data too: not another department's case in private...
        asked = world.server.send_user_message(spec.id, spec, f"/case {transport_case}")
        text = (await world.answer_to(asked)).text or ""
        assert text == "Нет прав на это действие." and "Автобус" not in text
        # ...nor in another department's chat; the duty officer may read any case.
        asked = world.say("tspec", world.transport, f"/case {housing_case}")
        text = (await world.answer_to(asked)).text or ""
        assert "другом чате" in text and "отопления" not in text
        asked = world.server.send_user_message(duty.id, duty, f"/case {housing_case}")
        assert "отопления" in ((await world.answer_to(asked)).text or "")


@pytest.mark.parametrize("forger", ["stranger", "other_department", "stale"])
async def test_deliver6_forged_callback_data_for_every_action_is_refused_and_audited(
    tmp_path: Path, forger: str
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case(HEATING)
        transport_case = await world.open_case(BUS)
        spec = world.app.directory.by_staff_id("spec")
        assert spec is not None
        for text in ("Мы разбираемся", "Мы разбираемся, напишите адрес"):
            result = await world.app.cases.act(
                case_id, ActionRequest(Action.DRAFT, text=text), spec
            )
            assert result.ok
        card = await world.card(case_id)
        await world.idle()
        case = await world.case(case_id)
        assert (case.version, case.latest_draft.version) == (2, 2)

        if forger == "stranger":  # not staff, but a member of the housing chat
            who, chat, pressed = "stranger", world.housing, card
            versions = (case.version, 2)
        elif forger == "other_department":  # pressed in the transport chat, on its own card
            who, chat = "tspec", world.transport
            pressed = await world.card(transport_case, "transport")
            versions = (case.version, 2)
        else:  # the housing lead may do everything, but on the card and draft before the last
            who, chat, pressed = "lead", world.housing, card
            versions = (case.version - 1, 1)
        data = [(d, case_id) for d in forged_data(case_id, *versions)]
        data += [(d, case_id) for d in malformed_data(case_id, *versions)]
        data.append(("garbage", None))
        if forger == "stranger":  # the triage list's buttons: for staff only
            thread = await world.app.cases.thread(case_id)
            assert thread is not None
            mention = thread.mentions[0].id
            data += [(f"t:{mention}:{decision}", None) for decision in ("n", "x", "z")]
        actor = {"stranger": "tg:6666", "other_department": "tspec", "stale": "lead"}[forger]
        seen = [(m.message_id, m.text, m.reply_markup) for m in bot_messages(world, chat)]

        for count, (forged, on_case) in enumerate(data, 1):
            answer = await world.forge(who, pressed, forged)
            assert answer.get("text") and "Готово" not in str(answer["text"]), forged
            refused = [e for e in await denied(world) if e.actor == actor]
            assert len(refused) == count, forged  # each refusal audited, once
            assert refused[-1].case_id == on_case, forged
        await world.idle()

        after = await world.case(case_id)
        assert (after.version, after.state, after.drafts) == (case.version, case.state, case.drafts)
        # Nothing posted, redrawn or asked in the chat the presses came from.
        assert [(m.message_id, m.text, m.reply_markup) for m in bot_messages(world, chat)] == seen
        if chat != world.housing:
            assert not any(HEATING in (m.text or "") for m in bot_messages(world, chat))
