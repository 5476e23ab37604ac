"""The inbound layer on its own, over a real case service and database: a press, a numbered
choice, a reply and a command, the way every transport's adapter hands them in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.chat.inbound import (
    BAD_BUTTON,
    BAD_CHOICE,
    Answer,
    Choice,
    Command,
    Controls,
    Feedback,
    Inbound,
    MenuPress,
    Press,
    Reply,
)
from bot.clock import FrozenClock
from bot.messages.outbox import Destination, OutboxItem
from bot.messages.texts import texts_for
from bot.messages.views import (
    MessageRef,
    RefKind,
    card_ref,
    draft_ref,
    notice_view,
    parse_ref,
    prompt_ref,
)
from bot.model import Action, CaseState, Outcome
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from tests.doubles.support import make_config, make_mention

TOPIC = Destination("telegram", "-100111", "7")
ROOM = Destination("matrix", "!housing:example.org")


@dataclass
class World:
    inbound: Inbound
    cases: CaseService
    directory: Directory
    database: Database

    def staff(self, staff_id: str) -> Actor:
        actor = self.directory.by_staff_id(staff_id)
        assert actor is not None
        return actor

    async def open_case(self, external_id: str = "1") -> int:
        opened = await self.cases.intake(
            make_mention(external_id, self.cases.now()), CaseOpening("housing")
        )
        assert opened.case is not None and opened.case.id is not None
        return opened.case.id

    async def state(self, case_id: int) -> CaseState:
        case = await self.cases.get(case_id)
        assert case is not None
        return case.state

    async def answers(self, where: Destination) -> dict[str, OutboxItem]:
        """Our answers queued for this chat, by their idempotency key."""
        async with self.database.uow() as uow:
            items = [await uow.outbox.get(n) for n in range(1, 200)]
        prefix = f"{where.transport}:{where.chat}:"
        return {
            i.idempotency_key.removeprefix(prefix): i
            for i in items
            if i is not None and i.idempotency_key.startswith(prefix) and i.ref_key is None
        }


@pytest.fixture
async def world(tmp_path: Path, database: Database, clock: FrozenClock) -> World:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    cases = CaseService(database.uow, clock, directory, config.tz)
    texts = texts_for(config.playbooks.templates, config.locale)
    inbound = Inbound(cases, Answers(cases, directory, texts), directory, texts)
    return World(inbound, cases, directory, database)


def button(
    world: World, who: str, case_id: int, action: str, arg: str = "", version: int | None = None
) -> Press:
    return Press(
        TOPIC,
        world.staff(who),
        case_id,
        RefKind.CARD,
        action,
        nonce="q1",
        controls=Controls.BUTTONS,
        arg=arg,
        version=version,
    )


def reaction(world: World, who: str, case_id: int, action: Action, on: RefKind) -> Press:
    return Press(
        ROOM,
        world.staff(who),
        case_id,
        on,
        action.value,
        nonce="$r1",
        controls=Controls.REACTIONS,
        answer=Answer("answer:$r1", under="$card"),
    )


# --- keys of our messages ------------------------------------------------------------------


def test_our_message_keys_read_back_as_they_were_built() -> None:
    assert parse_ref(card_ref(42, "housing")) == MessageRef(RefKind.CARD, 42)
    assert parse_ref(draft_ref(42, 3, "housing")) == MessageRef(RefKind.DRAFT, 42, version=3)
    assert parse_ref(prompt_ref("request_changes", 42, 3, "q9")) == MessageRef(
        RefKind.PROMPT, 42, Action.REQUEST_CHANGES, 3
    )
    for other in ("queue", "digest:2026-11-20", "card:x:housing", "prompt:fly:1:0:n", "card"):
        assert parse_ref(other) is None


async def test_our_message_finds_what_a_message_id_stands_for(world: World) -> None:
    async with world.database.uow() as uow:
        await uow.refs.put("telegram", TOPIC.chat, card_ref(7, "housing"), "501")
        await uow.commit()
    assert await world.inbound.our_message(TOPIC, "501") == MessageRef(RefKind.CARD, 7)
    assert await world.inbound.our_message(TOPIC, "502") is None
    assert await world.inbound.our_message(ROOM, "501", wait=True) is None  # idle chat: no wait


async def test_our_message_is_found_when_its_delivery_settles_during_the_wait(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race seen on a loaded CI: the ref is read before the outbox commits it, the chat's
    # backlog after, when the chat is idle again. One more look finds the message.
    async def settled_meanwhile(transport: str, chat: str) -> bool:
        async with world.database.uow() as uow:
            await uow.refs.put(transport, chat, draft_ref(7, 1, "housing"), "$draft")
            await uow.commit()
        return False

    monkeypatch.setattr(world.cases, "chat_busy", settled_meanwhile)
    found = await world.inbound.our_message(ROOM, "$draft", wait=True)
    assert found == MessageRef(RefKind.DRAFT, 7, version=1)


# --- presses -------------------------------------------------------------------------------


async def test_a_button_press_acts_and_answers_with_a_toast(world: World) -> None:
    case_id = await world.open_case()
    feedback = await world.inbound.press(button(world, "spec", case_id, "take", version=0))
    assert feedback == Feedback(notice_view("ui.done", action="take"))
    assert await world.state(case_id) is CaseState.TAKEN

    # The same card version again: stale, said without an alert (the card was redrawn).
    stale = await world.inbound.press(button(world, "lead", case_id, "take", version=0))
    assert stale.notice is not None and stale.notice["key"] == "error.stale" and not stale.alert

    stranger = await world.inbound.press(
        Press(
            TOPIC,
            world.directory.by_telegram(666, "Troll"),
            case_id,
            RefKind.CARD,
            "release",
            nonce="q2",
            controls=Controls.BUTTONS,
        )
    )
    assert stranger == Feedback(notice_view("ui.no_rights"), alert=True)
    assert await world.answers(TOPIC) == {}  # toasts only: nothing posted in the chat


async def test_forged_buttons_are_refused_before_the_service(world: World) -> None:
    case_id = await world.open_case()
    refused = Feedback(BAD_BUTTON, alert=True)
    for press in (
        button(world, "spec", case_id, "fly"),  # no such action
        button(world, "spec", case_id, "approve"),  # a review button under a card
        button(world, "spec", case_id, "close", arg="maybe"),  # no such outcome
        button(world, "spec", case_id, "take", arg="extra"),  # only menus carry an argument
    ):
        assert await world.inbound.press(press) == refused
    assert (
        await world.inbound.open_menu(MenuPress(TOPIC, world.staff("spec"), case_id, "take", "q"))
        == refused
    )
    assert await world.state(case_id) is CaseState.NEW


async def test_a_menu_choice_button_carries_its_argument(world: World) -> None:
    case_id = await world.open_case()
    await world.cases.act(case_id, ActionRequest(Action.TAKE), world.staff("spec"))
    opened = await world.inbound.open_menu(
        MenuPress(TOPIC, world.staff("spec"), case_id, "close", "q1")
    )
    assert opened == Feedback()  # the card's buttons change; nothing to say
    await world.inbound.press(button(world, "spec", case_id, "close", arg="resolved", version=1))
    case = await world.cases.get(case_id)
    assert case is not None and case.outcome is Outcome.RESOLVED


async def test_a_reaction_lists_a_menu_and_a_number_chooses(world: World) -> None:
    case_id = await world.open_case()
    await world.cases.act(case_id, ActionRequest(Action.TAKE), world.staff("spec"))

    await world.inbound.press(reaction(world, "spec", case_id, Action.CLOSE, RefKind.CARD))
    listed = (await world.answers(ROOM))["answer:$r1"]
    assert listed.payload["key"] == "ui.matrix_menu" and listed.reply_to_key == "ext:$card"
    assert "1. " in listed.payload["params"]["choices"]

    answer = Answer("answer:$n1", under="$card")
    wrong = Choice(ROOM, world.staff("spec"), case_id, 99, answer)
    assert await world.inbound.choose(wrong)
    assert (await world.answers(ROOM))["answer:$n1"].payload == BAD_CHOICE

    number = 1 + [o.value for o in Outcome].index("resolved")
    chosen = Choice(ROOM, world.staff("spec"), case_id, number, Answer("answer:$n2"))
    assert await world.inbound.choose(chosen)
    case = await world.cases.get(case_id)
    assert case is not None and case.state is CaseState.CLOSED
    assert case.outcome is Outcome.RESOLVED
    # One choice per list: the next number is not for the bot's list any more.
    again = Choice(ROOM, world.staff("spec"), case_id, 1, Answer("answer:$n3"))
    assert await world.inbound.choose(again)
    assert (await world.answers(ROOM))["answer:$n3"].payload == BAD_CHOICE
    # Without any list shown, a number is just a number.
    other = await world.open_case("2")
    assert not await world.inbound.choose(Choice(ROOM, world.staff("spec"), other, 1, answer))


async def test_a_reaction_says_only_what_needs_saying(world: World) -> None:
    case_id = await world.open_case()
    await world.inbound.press(reaction(world, "spec", case_id, Action.TAKE, RefKind.CARD))
    assert await world.state(case_id) is CaseState.TAKEN
    assert await world.answers(ROOM) == {}  # the card shows it

    await world.inbound.press(reaction(world, "tspec", case_id, Action.RELEASE, RefKind.CARD))
    assert (await world.answers(ROOM))["answer:$r1"].payload == notice_view("ui.no_rights")


# --- replies -------------------------------------------------------------------------------


async def test_a_reply_to_a_card_is_a_draft_and_a_link_to_an_approved_one_publishes(
    world: World,
) -> None:
    case_id = await world.open_case()
    card = MessageRef(RefKind.CARD, case_id)
    reply = Reply(
        TOPIC,
        world.staff("spec"),
        card,
        "Мы разбираемся",
        Controls.BUTTONS,
        Answer("reply:77", under="77"),
    )
    assert await world.inbound.reply(reply)
    sent = (await world.answers(TOPIC))["reply:77"]
    assert sent.payload == notice_view("ui.draft_sent", case_id=case_id, version=1)
    assert sent.reply_to_key == "ext:77"

    await world.cases.act(case_id, ActionRequest(Action.APPROVE), world.staff("appr"))
    link = Reply(
        TOPIC,
        world.staff("spec"),
        card,
        "https://vk.com/wall-1_1?reply=5",
        Controls.BUTTONS,
        Answer("reply:78", under="78"),
    )
    assert await world.inbound.reply(link)
    case = await world.cases.get(case_id)
    assert case is not None and case.state is CaseState.PUBLISHED
    assert (await world.answers(TOPIC))["reply:78"].payload == notice_view(
        "ui.done", action="mark_published"
    )


async def test_a_reply_to_a_prompt_carries_its_action_and_a_refusal_names_the_right(
    world: World,
) -> None:
    case_id = await world.open_case()
    await world.cases.act(case_id, ActionRequest(Action.DRAFT, text="Ответ"), world.staff("spec"))
    prompt = MessageRef(RefKind.PROMPT, case_id, Action.REQUEST_CHANGES, 1)

    def note(who: str, key: str) -> Reply:
        return Reply(
            TOPIC, world.staff(who), prompt, "Добавьте срок", Controls.BUTTONS, Answer(key)
        )

    assert await world.inbound.reply(note("tspec", "reply:1"))
    refused = (await world.answers(TOPIC))["reply:1"].payload
    assert refused["key"] == "error.no_right"  # a text answer says which right is missing
    assert await world.inbound.reply(note("appr", "reply:2"))
    case = await world.cases.get(case_id)
    assert case is not None and case.state is CaseState.CHANGES_REQUESTED
    assert case.latest_draft is not None and case.latest_draft.note == "Добавьте срок"

    # A reply to a draft message or to a prompt that takes no text is conversation.
    draft = MessageRef(RefKind.DRAFT, case_id, version=1)
    chat = Reply(TOPIC, world.staff("spec"), draft, "ок", Controls.BUTTONS, Answer("reply:3"))
    assert not await world.inbound.reply(chat)


async def test_draft_and_escalate_reactions_ask_in_the_thread_for_the_presser(
    world: World, clock: FrozenClock
) -> None:
    case_id = await world.open_case()
    card = MessageRef(RefKind.CARD, case_id)

    def text(who: str, words: str, key: str) -> Reply:
        return Reply(ROOM, world.staff(who), card, words, Controls.REACTIONS, Answer(key, "$card"))

    # 📝 acts on nothing yet: it asks in the card's thread.
    assert await world.inbound.press(reaction(world, "spec", case_id, Action.DRAFT, RefKind.CARD))
    asked = (await world.answers(ROOM))["answer:$r1"]
    assert asked.payload == notice_view("ui.matrix_prompt_draft", case_id=case_id)
    assert asked.reply_to_key == "ext:$card"  # in the card's thread
    assert await world.state(case_id) is CaseState.NEW
    # Someone else's message there is conversation; the presser's is the draft, once.
    assert not await world.inbound.prompted(text("appr", "Посмотрю", "t:1"))
    assert await world.inbound.prompted(text("spec", "Мы разбираемся", "t:2"))
    case = await world.cases.get(case_id)
    assert case is not None and case.latest_draft is not None
    assert (case.latest_draft.author, case.latest_draft.text) == ("spec", "Мы разбираемся")
    assert not await world.inbound.prompted(text("spec", "Спасибо", "t:3"))

    # ⏫ asks for the reason; a question left for over an hour has lapsed.
    press = reaction(world, "spec", case_id, Action.ESCALATE, RefKind.CARD)
    await world.inbound.press(press)
    clock.advance(timedelta(hours=2))
    assert not await world.inbound.prompted(text("spec", "Поздно", "t:4"))
    await world.inbound.press(replace(press, nonce="$r2", answer=Answer("answer:$r2", "$card")))
    assert (await world.answers(ROOM))["answer:$r2"].payload == notice_view(
        "ui.matrix_prompt_reason", case_id=case_id
    )
    assert await world.inbound.prompted(text("spec", "Нужна помощь руководства", "t:5"))
    case = await world.cases.get(case_id)
    assert case is not None and case.escalation_level == 1

    # A stranger is refused at the reaction, and nothing is asked of them.
    stranger = replace(press, actor=Actor.stranger("@troll:example.org"), nonce="$r3")
    assert (await world.inbound.press(stranger)).alert
    troll = Reply(ROOM, stranger.actor, card, "ха", Controls.REACTIONS, Answer("t:6"))
    assert not await world.inbound.prompted(troll)


async def test_a_thread_command_names_its_action_and_is_quiet_when_done(world: World) -> None:
    case_id = await world.open_case()
    card = MessageRef(RefKind.CARD, case_id)
    escalate = Reply(
        ROOM,
        world.staff("spec"),
        card,
        "",
        Controls.REACTIONS,
        Answer("answer:$t1", "$card"),
        action=Action.ESCALATE,
    )
    assert await world.inbound.reply(escalate)
    case = await world.cases.get(case_id)
    assert case is not None and case.escalation_level == 1
    assert "answer:$t1" not in await world.answers(ROOM)


# --- commands ------------------------------------------------------------------------------


async def test_commands_parse_their_arguments_once_for_every_transport(world: World) -> None:
    case_id = await world.open_case()

    async def ask(
        name: str, args: str, key: str, about: MessageRef | None = None
    ) -> dict[str, object]:
        command = Command(TOPIC, world.staff("spec"), name, args, Answer(key, key), about=about)
        assert await world.inbound.command(command)
        return (await world.answers(TOPIC))[key].payload

    story = await ask("case", f"#{case_id} please", "cmd:1")
    assert story["view"] == "page" and story["template"] == "case_thread.html.j2"
    assert (await ask("case", "", "cmd:2")) == notice_view("ui.usage_case")
    assert (await ask("merge", "5", "cmd:3")) == notice_view("ui.usage_merge")
    assert (await ask("escalate", "", "cmd:4")) == notice_view("ui.usage_escalate")
    # /escalate in reply to a card (or in its thread): the card says which case.
    card = MessageRef(RefKind.CARD, case_id)
    done = await ask("escalate", "жалоба губернатору", "cmd:5", about=card)
    assert done == notice_view("ui.done", action="escalate")
    thread = await world.cases.thread(case_id)
    assert thread is not None
    assert thread.events[-1].payload.get("reason") == "жалоба губернатору"

    unknown = Command(TOPIC, world.staff("spec"), "dance", "", Answer("cmd:6"))
    assert not await world.inbound.command(unknown)
