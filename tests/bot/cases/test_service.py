"""Case service over a real SQLite file: intake, actions, audit, cards in the outbox."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.cases import lifecycle
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import (
    ActionRequest,
    DomainError,
    InvalidInput,
    NoRight,
    NotAssignee,
    SelfReview,
    StaleCard,
)
from bot.cases.outcomes import NotPublishable, UnknownCase
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.model import Action, Case, CaseState, EventKind, GlobalRole, Priority, Sentiment
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from tests.doubles.support import make_config, make_mention


@pytest.fixture
async def setup(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> tuple[CaseService, Directory, Database]:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}))
    return CaseService(database.uow, clock, directory, config.tz), directory, database


def staff(directory: Directory, staff_id: str) -> Actor:
    actor = directory.by_staff_id(staff_id)
    assert actor is not None
    return actor


async def queued(database: Database) -> list[OutboxItem]:
    async with database.uow() as uow:
        items = [await uow.outbox.get(n) for n in range(1, 100)]
    return [i for i in items if i is not None]


async def test_intake_is_idempotent_and_builds_the_author_card(
    setup: tuple[CaseService, Directory, Database], clock: FrozenClock
) -> None:
    cases, _, database = setup
    first = await cases.intake(
        make_mention("1", clock.now(), author="id42"), CaseOpening("housing")
    )
    again = await cases.intake(
        make_mention("1", clock.now(), author="id42"), CaseOpening("housing")
    )
    neutral = await cases.intake(
        make_mention("2", clock.now(), text="Спасибо", author="id42", sentiment=Sentiment.POSITIVE),
        None,
    )
    assert first.case is not None and first.case.state is CaseState.NEW
    assert again.duplicate and again.case is None
    assert neutral.case is None and neutral.mention is not None

    assert first.case.id is not None
    thread = await cases.thread(first.case.id)
    assert thread is not None and thread.author is not None
    assert (thread.author.negative_count, thread.author.positive_count) == (1, 1)
    assert [e.kind for e in thread.events] == [EventKind.CREATED]

    # One card per configured chat of the department: Telegram topic and Matrix room.
    items = await queued(database)
    assert {(i.transport, i.chat, i.thread, i.op) for i in items} == {
        ("telegram", "-100111", "7", OutboxOp.POST),
        ("matrix", "!housing:example.org", None, OutboxOp.POST),
    }
    assert items[0].payload["text"] == "Третий день нет отопления"


async def test_refusals_change_nothing_and_rights_refusals_are_audited(
    setup: tuple[CaseService, Directory, Database], clock: FrozenClock
) -> None:
    cases, directory, database = setup
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    case_id = opened.case.id
    before = len(await queued(database))

    stranger = directory.by_telegram(666, "Troll")
    outsider = staff(directory, "tspec")
    for actor in (stranger, outsider):
        result = await cases.act(case_id, ActionRequest(Action.TAKE), actor)
        assert isinstance(result.error, NoRight)
    unknown = await cases.act(999, ActionRequest(Action.TAKE), staff(directory, "spec"))
    assert isinstance(unknown.error, UnknownCase)
    stale = await cases.act(
        case_id, ActionRequest(Action.TAKE, expected_version=5), staff(directory, "spec")
    )
    assert isinstance(stale.error, StaleCard)
    nowhere = await cases.act(
        case_id, ActionRequest(Action.REROUTE, department="mars"), staff(directory, "spec")
    )
    assert isinstance(nowhere.error, InvalidInput)

    thread = await cases.thread(case_id)
    assert thread is not None and thread.case == opened.case
    denied = [e for e in thread.events if e.kind == EventKind.DENIED]
    # A press on a stale card is audited too (issue 15): it acted on what was no longer shown.
    assert [(e.actor, e.payload["action"], e.payload["reason"]) for e in denied] == [
        ("tg:666", "take", "no_right"),
        ("tspec", "take", "no_right"),
        ("spec", "take", "stale"),
    ]
    assert len(await queued(database)) == before  # no card edits for refused presses


async def test_reroute_moves_the_card_and_leaves_a_note_in_the_old_chat(
    setup: tuple[CaseService, Directory, Database], clock: FrozenClock
) -> None:
    cases, directory, database = setup
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    result = await cases.act(
        opened.case.id,
        ActionRequest(Action.REROUTE, department="transport"),
        staff(directory, "spec"),
    )
    assert result.ok and result.case is not None
    assert result.case.department == "transport" and result.case.state is CaseState.NEW
    items = await queued(database)
    # The old cards were never sent: they go out once, saying where the case went.
    moved = [i for i in items if i.chat in ("-100111", "!housing:example.org")]
    assert [i.op for i in moved] == [OutboxOp.POST, OutboxOp.POST]
    assert all(i.payload["moved_to"] == "Транспорт" and i.payload["actions"] == [] for i in moved)
    new_card = items[-1]
    assert (new_card.op, new_card.chat, new_card.ref_key) == (
        OutboxOp.POST,
        "-100222",
        f"card:{opened.case.id}:transport",
    )
    # Transport staff can now act on it; housing staff no longer can.
    assert (
        await cases.act(opened.case.id, ActionRequest(Action.TAKE), staff(directory, "tspec"))
    ).ok
    assert isinstance(
        (
            await cases.act(opened.case.id, ActionRequest(Action.RELEASE), staff(directory, "spec"))
        ).error,
        NoRight,
    )


async def test_two_presses_on_the_same_card_version_one_wins(
    setup: tuple[CaseService, Directory, Database], clock: FrozenClock
) -> None:
    cases, directory, _ = setup
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    version = opened.case.version
    first = await cases.act(
        opened.case.id,
        ActionRequest(Action.TAKE, expected_version=version),
        staff(directory, "spec"),
    )
    second = await cases.act(
        opened.case.id,
        ActionRequest(Action.TAKE, expected_version=version),
        staff(directory, "spec2"),
    )
    assert first.ok and isinstance(second.error, StaleCard)
    case = await cases.get(opened.case.id)
    assert case is not None and case.assignee == "spec"


async def test_ensure_cards_posts_missing_cards_once(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, database.url)
    offline = CaseService(database.uow, clock, Directory(config), config.tz)
    await offline.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert await queued(database) == []  # no transport: stored, nothing to send

    online = CaseService(database.uow, clock, Directory(config, frozenset({"telegram"})), config.tz)
    assert await online.ensure_cards() == 1
    assert await online.ensure_cards() == 0


def full_service(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> tuple[CaseService, Directory]:
    from bot.cases.replies import ReplyCatalog
    from bot.settings.connections import DiscussionGroup, TelegramConfig
    from bot.settings.playbook import load_playbook

    # The organisation's discussion group: the one place approved answers are posted into.
    group = DiscussionGroup(chat_id=-100500, name="Обсуждение новостей")
    config = make_config(tmp_path, database.url)
    config = config.model_copy(update={"telegram": TelegramConfig(discussion_groups=[group])})
    directory = Directory(config, frozenset({"telegram"}))
    replies = ReplyCatalog(load_playbook(config.playbooks.path), "ru", "Администрация", directory)
    service = CaseService(
        database.uow, clock, directory, config.tz, replies=replies, coordination="coordination"
    )
    return service, directory


async def test_template_draft_review_escalation_and_publishing_messages(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    from bot.cases.replies import telegram_comment_id
    from bot.messages.views import prompt_ref

    cases, directory = full_service(tmp_path, database, clock)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    comment = replace(
        make_mention("x", clock.now()),
        source="telegram",
        external_id=telegram_comment_id(-100500, 77),
    )
    from_vk = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    from_tg = await cases.intake(comment, CaseOpening("housing"))
    assert from_vk.case and from_tg.case and from_vk.case.id and from_tg.case.id
    vk_id, tg_id = from_vk.case.id, from_tg.case.id

    # A pre-approved first-touch template: approved at once, with nothing the author chose
    # in it (their name is theirs to pick; issue 15, fault 8).
    result = await cases.act(
        vk_id, ActionRequest(Action.USE_TEMPLATE, template_id="first-touch-housing"), spec
    )
    assert result.ok, result.error
    assert result.case and result.case.state is CaseState.APPROVED
    draft_text = result.case.latest_draft.text if result.case.latest_draft else ""
    assert draft_text.startswith("Здравствуйте! Видим") and "Пётр" not in draft_text
    unknown = await cases.act(vk_id, ActionRequest(Action.USE_TEMPLATE, template_id="nope"), spec)
    assert isinstance(unknown.error, InvalidInput)
    # The bot cannot post on VK: publishing there is refused, marking works.
    assert isinstance(
        (await cases.act(vk_id, ActionRequest(Action.PUBLISH), spec)).error, NotPublishable
    )
    assert (await cases.act(vk_id, ActionRequest(Action.MARK_PUBLISHED), spec)).ok

    # A written draft is posted under the card for review and edited when reviewed.
    await cases.act(tg_id, ActionRequest(Action.DRAFT, text="Проверим и ответим"), spec)
    await cases.act(tg_id, ActionRequest(Action.APPROVE), appr)
    items = [i for i in await queued(database) if i.case_id == tg_id]
    drafts = [i for i in items if i.payload["view"] == "draft"]
    assert [(d.op, d.payload["status"], d.reply_to_key) for d in drafts] == [
        (OutboxOp.REPLY, "approved", f"card:{tg_id}:housing")  # review folded into the post
    ]
    await cases.act(tg_id, ActionRequest(Action.ESCALATE, note="пишут в прокуратуру"), spec)
    await cases.act(tg_id, ActionRequest(Action.PUBLISH), spec)
    items = [i for i in await queued(database) if i.case_id == tg_id]
    notices = [(i.chat, i.op) for i in items if i.payload["view"] == "notice"]
    assert notices == [("-100111", OutboxOp.REPLY), ("-100999", OutboxOp.POST)]
    public = [i for i in items if i.payload["view"] == "public_reply"]
    assert [(p.chat, p.reply_to_key, p.payload["text"]) for p in public] == [
        ("-100500", "ext:77", "Проверим и ответим")
    ]

    # Prompts and menus are checked like the actions they lead to.
    where = directory.destinations("housing")[0]
    third = await cases.intake(make_mention("3", clock.now()), CaseOpening("housing"))
    assert third.case and third.case.id
    assert (await cases.prompt(third.case.id, Action.DRAFT, spec, where, "n1")).ok
    denied = await cases.prompt(third.case.id, Action.DRAFT, directory.by_telegram(5), where, "n2")
    assert isinstance(denied.error, NoRight)
    assert (await cases.open_menu(third.case.id, Action.REROUTE, spec, where, "n3")).ok
    items = [i for i in await queued(database) if i.case_id == third.case.id]
    prompt = next(i for i in items if i.payload["view"] == "prompt")
    assert prompt.ref_key == prompt_ref("draft", third.case.id, 0, "n1")
    # Apology and refutation start an answer: the draft prompt shows them to complete ...
    starts = prompt.payload["params"]["starts"]
    assert {s["title"] for s in starts} >= {"Извинение", "Опровержение"}
    assert any("[что пошло не так]" in s["text"] for s in starts)
    card = next(i for i in items if i.payload["view"] == "card")
    assert card.payload["menu"] == "reroute"
    assert {o["arg"] for o in card.payload["options"]} == {"transport", "coordination"}
    # ... and the first-reply menu does not offer them.
    _, first_reply = await cases.menu_choices(third.case.id, Action.USE_TEMPLATE, spec, where)
    offered = {o["arg"] for o in first_reply}
    assert "first-touch-housing" in offered and "move-to-private" in offered
    assert not offered & {"apology", "refutation", "follow-up-result"}
    apology = ActionRequest(Action.USE_TEMPLATE, template_id="apology")
    assert isinstance((await cases.act(third.case.id, apology, spec)).error, InvalidInput)


async def test_prompts_and_menus_meet_the_guards_of_the_action_itself(
    tmp_path: Path, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt for "request changes" on one's own draft is refused by lifecycle.check, the
    very guard the action meets; so is a draft prompt on somebody else's case. Nothing is
    posted, nothing audited (only refusals for rights are)."""
    cases, directory = full_service(tmp_path, database, clock)
    lead, spec, spec2 = (
        staff(directory, "lead"),
        staff(directory, "spec"),
        staff(directory, "spec2"),
    )
    where = directory.destinations("housing")[0]
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case and opened.case.id
    case_id = opened.case.id
    assert (await cases.act(case_id, ActionRequest(Action.DRAFT, text="Моё"), lead)).ok
    before = len(await queued(database))

    checked: list[tuple[Action, str]] = []
    real_check = lifecycle.check

    def spy(case: Case, request: ActionRequest, actor: Actor) -> DomainError | None:
        checked.append((request.action, actor.id))
        return real_check(case, request, actor)

    monkeypatch.setattr(lifecycle, "check", spy)
    prompt = await cases.prompt(case_id, Action.REQUEST_CHANGES, lead, where, "n1")
    action = await cases.act(case_id, ActionRequest(Action.REQUEST_CHANGES, note="Я"), lead)
    choices, options = await cases.menu_choices(case_id, Action.REQUEST_CHANGES, lead)
    assert checked == [(Action.REQUEST_CHANGES, "lead")] * 3
    for refused in (prompt.error, action.error, choices.error):
        assert isinstance(refused, SelfReview) and refused.params == {"version": 1}
    assert options == []

    # Ownership, too: the lead's case takes no draft and no template from another specialist.
    draft = await cases.prompt(case_id, Action.DRAFT, spec2, where, "n2")
    menu = await cases.open_menu(case_id, Action.USE_TEMPLATE, spec2, where, "n3")
    assert isinstance(draft.error, NotAssignee) and isinstance(menu.error, NotAssignee)
    # A refusal for rights is audited, as the action's would be; the others are not.
    rights = await cases.prompt(case_id, Action.REQUEST_CHANGES, spec, where, "n4")
    assert isinstance(rights.error, NoRight)
    thread = await cases.thread(case_id)
    assert thread is not None
    denied = [e for e in thread.events if e.kind == EventKind.DENIED]
    assert [(e.actor, e.payload["action"], e.payload["reason"]) for e in denied] == [
        ("spec", "request_changes", "no_right")
    ]
    assert len(await queued(database)) == before  # no prompt, no menu was posted


async def test_fault7_publish_never_posts_into_a_chat_a_mention_names(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    from bot.cases.replies import telegram_comment_id

    cases, directory = full_service(tmp_path, database, clock)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    # Stored under "telegram" by a sender, not by the Telegram adapter: its external id names
    # the housing work chat, not a discussion group.
    forged = replace(
        make_mention("f", clock.now()),
        source="telegram",
        external_id=telegram_comment_id(-100111, 5),
    )
    opened = await cases.intake(forged, CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    case_id = opened.case.id
    assert (await cases.act(case_id, ActionRequest(Action.DRAFT, text="Ответ"), spec)).ok
    assert (await cases.act(case_id, ActionRequest(Action.APPROVE), appr)).ok
    refused = await cases.act(case_id, ActionRequest(Action.PUBLISH), spec)
    assert isinstance(refused.error, NotPublishable)
    items = [i for i in await queued(database) if i.case_id == case_id]
    assert not [i for i in items if i.payload["view"] == "public_reply"]
    card = [i for i in items if i.payload["view"] == "card"][-1]
    assert Action.PUBLISH.value not in card.payload["actions"]  # no button offers it either


async def test_the_policy_chain_is_fixed_on_the_draft_and_asked_in_the_coordination_chat(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    policy = load_playbook(DEFAULT_PLAYBOOK_DIR).approval
    cases = CaseService(
        database.uow, clock, directory, config.tz, coordination="coordination", approval=policy
    )
    opened = await cases.intake(
        make_mention("1", clock.now()), CaseOpening("housing", Priority.CRITICAL)
    )
    assert opened.case is not None and opened.case.id is not None
    case_id = opened.case.id
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    press = Actor("press", "Пресс", global_roles=frozenset({GlobalRole.PRESS_SECRETARY}))
    boss = Actor("boss", "Глава", global_roles=frozenset({GlobalRole.LEADERSHIP}))

    drafted = await cases.act(case_id, ActionRequest(Action.DRAFT, text="Ответ"), spec)
    assert drafted.case is not None and drafted.case.latest_draft is not None
    assert [t.value for t in drafted.case.latest_draft.tiers] == [
        "department",
        "press_secretary",
        "leadership",
    ]
    # Lowering the priority now does not change the chain of the draft under review.
    async with database.uow() as uow:
        lowered = replace(drafted.case, priority=Priority.NORMAL, version=drafted.case.version + 1)
        await uow.cases.save(lowered, expected_version=drafted.case.version)
        await uow.commit()

    def coordination_drafts(items: list[OutboxItem]) -> list[OutboxItem]:
        return [i for i in items if i.chat == "-100999" and i.payload.get("view") == "draft"]

    assert coordination_drafts(await queued(database)) == []
    assert (await cases.act(case_id, ActionRequest(Action.APPROVE), appr)).error is None
    (posted,) = coordination_drafts(await queued(database))
    assert posted.op is OutboxOp.POST and posted.payload["actions"] == [
        "approve",
        "request_changes",
        "reject",
    ]
    assert [s["state"] for s in posted.payload["chain"]] == ["done", "current", "waiting"]
    refused = await cases.act(case_id, ActionRequest(Action.APPROVE), boss)
    assert refused.error is not None and refused.error.code == "wrong_tier"
    assert (await cases.act(case_id, ActionRequest(Action.APPROVE), press)).error is None
    done = await cases.act(case_id, ActionRequest(Action.APPROVE), boss)
    assert done.case is not None and done.case.state is CaseState.APPROVED
    # Not delivered here: the outbox folds the edits into the waiting post, which now shows
    # every step approved and no buttons.
    (posted,) = coordination_drafts(await queued(database))
    assert [s["state"] for s in posted.payload["chain"]] == ["done", "done", "done"]
    assert posted.payload["actions"] == []


async def test_a_template_needing_no_second_person_is_published_as_it_is_chosen(
    tmp_path: Path, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cases.replies import ReplyCatalog, telegram_comment_id
    from bot.messages.outbox import PRESS_URGENCY

    cases, directory = full_service(tmp_path, database, clock)
    spec = staff(directory, "spec")
    comments = []
    for n in (77, 78):
        comment = replace(
            make_mention(str(n), clock.now(), author=f"id{n}"),
            source="telegram",
            external_id=telegram_comment_id(-100500, n),
        )
        opened = await cases.intake(comment, CaseOpening("housing"))
        assert opened.case and opened.case.id
        comments.append(opened.case.id)
    first, second = comments
    where = directory.destinations("housing")[0]
    async with database.uow() as uow:  # the cards are in the chat: presses come on them
        for item in await queued(database):
            assert item.id is not None
            await uow.outbox.mark_delivered(item.id, clock.now(), str(item.id))
        await uow.commit()
    cards_posted = await queued(database)

    # The menu says which templates publish at once, and shows each text on the card.
    await cases.open_menu(first, Action.USE_TEMPLATE, spec, where, "m1")
    card = next(
        i
        for i in await queued(database)
        if i.case_id == first and i.payload["view"] == "card" and i.payload.get("menu")
    )
    housing = next(o for o in card.payload["options"] if o["arg"] == "first-touch-housing")
    assert housing["label_key"] == "ui.publish_template"
    assert housing["label_params"] == {"title": "Первый ответ (ЖКХ)"}
    assert housing["preview"].startswith("Здравствуйте! Видим")
    assert card.urgency >= PRESS_URGENCY  # the person waits for it

    # A fresh case: taken, approved and published in one step, every step audited.
    choice = ActionRequest(Action.USE_TEMPLATE, template_id="first-touch-housing")
    result = await cases.act(first, choice, spec, where)
    assert result.ok, result.error
    assert result.case and result.case.state is CaseState.PUBLISHED
    assert [e.kind for e in result.events] == [Action.TAKE, Action.USE_TEMPLATE, Action.PUBLISH]
    assert result.case.assignee == "spec" and result.case.first_touched_at == clock.now()
    items = [i for i in await queued(database) if i.case_id == first]
    public = [i for i in items if i.payload["view"] == "public_reply"]
    assert [(p.chat, p.reply_to_key) for p in public] == [("-100500", "ext:77")]
    edits = [i for i in items if i.op is OutboxOp.EDIT and i.payload["view"] == "card"]
    assert edits[-1].payload["case"]["state"] == "published"
    assert all(i.urgency >= PRESS_URGENCY for i in [*public, *edits])
    assert cards_posted and all(i.urgency < PRESS_URGENCY for i in cards_posted)  # new cards

    # Where a policy keeps the template in review (the approval-tier hook), it is a draft
    # for a second person, published by nobody yet.
    monkeypatch.setattr(ReplyCatalog, "skips_review", lambda self, template, case: False)
    result = await cases.act(second, choice, spec, where)
    assert result.ok and result.case and result.case.state is CaseState.AWAITING_APPROVAL
    assert not [
        i
        for i in await queued(database)
        if i.case_id == second and i.payload["view"] == "public_reply"
    ]
    await cases.open_menu(second, Action.USE_TEMPLATE, spec, where, "m2")
    menu = [
        i
        for i in await queued(database)
        if i.case_id == second and i.payload["view"] == "card" and i.payload.get("menu")
    ]
    labels = {o.get("label") for o in menu[-1].payload["options"]}
    assert "Первый ответ (ЖКХ)" in labels  # no «Опубликовать:» where it would not publish


def test_a_template_ends_the_escalation_chase_as_a_draft_or_an_approval_does() -> None:
    from bot.cases.service import _chase_action
    from bot.settings.playbook import load_playbook
    from tests.doubles.support import ROOT

    chase = _chase_action
    template = ActionRequest(Action.USE_TEMPLATE, template_id="t")
    pre_approved = replace(template, pre_approved=True)
    assert chase(template) is Action.DRAFT and chase(pre_approved) is Action.APPROVE
    assert chase(ActionRequest(Action.TAKE)) is Action.TAKE
    # With the shipped playbook, a template chosen on a fresh card stops every chain that
    # Take, Draft or Approve stops.
    chains = load_playbook(ROOT / "playbooks" / "default").escalation.chains.values()
    for chain in chains:
        if {Action.TAKE, Action.DRAFT} & set(chain.stop_on):
            assert chase(template) in chain.stop_on
        if Action.APPROVE in chain.stop_on:
            assert chase(pre_approved) in chain.stop_on
