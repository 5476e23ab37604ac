"""Answering a cluster once (issue 19, item 2): the approved answer goes under every mention
the bot can answer, each its own outbox item; the rest are copied and marked by hand; the card
counts. Real store on both backends, the outbox worker with a recording transport."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest, InvalidTransition
from bot.cases.replies import ReplyCatalog, telegram_comment_id
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.delivery import OutboxWorker
from bot.messages.outbox import Delivery, DeliveryResult, OutboxItem, OutboxOp, RetryLater
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import Action, CaseState, Mention
from bot.settings.connections import DiscussionGroup, TelegramConfig
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import make_config, make_mention

GROUP = -100500  # the organisation's discussion group
STORY = "post-1"  # every mention here sits under one post: one case
ANSWER = "Воду дадут до 18:00, бригада уже на месте."


def service(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> tuple[CaseService, Directory]:
    group = DiscussionGroup(chat_id=GROUP, name="Обсуждение новостей")
    config = make_config(tmp_path, database.url)
    config = config.model_copy(update={"telegram": TelegramConfig(discussion_groups=[group])})
    directory = Directory(config, frozenset({"telegram"}))
    replies = ReplyCatalog(load_playbook(config.playbooks.path), "ru", "Администрация", directory)
    cases = CaseService(
        database.uow, clock, directory, config.tz, replies=replies, coordination="coordination"
    )
    return cases, directory


def comment(n: int, clock: FrozenClock) -> Mention:
    return replace(
        make_mention(f"c{n}", clock.now()),
        source="telegram",
        external_id=telegram_comment_id(GROUP, 1000 + n),
        url=None,
        story_id=STORY,
    )


def elsewhere(n: int, clock: FrozenClock) -> Mention:
    return replace(make_mention(f"vk{n}", clock.now()), story_id=STORY)


def staff(directory: Directory, staff_id: str) -> Actor:
    actor = directory.by_staff_id(staff_id)
    assert actor is not None
    return actor


async def outbox(database: Database) -> list[OutboxItem]:
    async with database.uow() as uow:
        items = [await uow.outbox.get(n) for n in range(1, 400)]
    return [i for i in items if i is not None]


@dataclass
class FlakyTelegram:
    """Delivers `budget` replies into the discussion group, then refuses the rest for
    `after` seconds (the process died, or the group's limit); staff chats always work."""

    budget: int
    after: float = 3600.0
    inner: RecordingTransport = field(default_factory=RecordingTransport)
    name: str = "telegram"

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        if delivery.item.chat == str(GROUP):
            if self.budget <= 0:
                raise RetryLater("gone", after=self.after)
            self.budget -= 1
        return await self.inner.deliver(delivery)


async def publish_cluster(
    cases: CaseService, directory: Directory, clock: FrozenClock, comments: int, others: int
) -> int:
    """A case of `comments` discussion-group comments and `others` VK posts, answered."""
    mentions = [comment(n, clock) for n in range(comments)]
    mentions += [elsewhere(n, clock) for n in range(others)]
    ids = set()
    for mention in mentions:
        got = await cases.intake(mention, CaseOpening("housing"))
        assert got.case is not None and got.case.id is not None
        ids.add(got.case.id)
    assert len(ids) == 1
    (case_id,) = ids
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    assert (await cases.act(case_id, ActionRequest(Action.DRAFT, text=ANSWER), spec)).ok
    assert (await cases.act(case_id, ActionRequest(Action.APPROVE), appr)).ok
    published = await cases.act(case_id, ActionRequest(Action.PUBLISH), spec)
    assert published.ok, published.error
    return case_id


def card_text(item: OutboxItem, locale: str = "ru") -> str:
    assert item.payload["view"] == "card"
    return texts_for(DEFAULT_TEMPLATES_DIR, locale).render("card.html.j2", **item.payload)


async def test_every_comment_gets_the_answer_once_and_the_card_counts(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    case_id = await publish_cluster(cases, directory, clock, comments=6, others=2)

    items = await outbox(database)
    public = [i for i in items if i.payload["view"] == "public_reply"]
    # One reply under each comment, each keyed by case, draft version and mention; the
    # first keeps the key a single answer always had.
    assert sorted(i.reply_to_key or "" for i in public) == [f"ext:{1000 + n}" for n in range(6)]
    assert {i.chat for i in public} == {str(GROUP)}
    assert {i.payload["text"] for i in public} == {ANSWER}
    keys = [i.idempotency_key for i in public]
    assert len(set(keys)) == 6
    assert f"telegram:{GROUP}:publish:{case_id}:1" in keys
    assert all(k.startswith(f"telegram:{GROUP}:publish:{case_id}:1") for k in keys)

    case = await cases.get(case_id)
    assert case is not None and case.state is CaseState.PUBLISHED
    assert (case.answer_targets, case.hand_due, case.hand_published) == (6, 2, 0)
    # The VK posts: the answer to copy, their links, how to mark it done; under the card.
    (notice,) = [
        i for i in items if i.payload["view"] == "notice" and "by_hand" in i.payload["key"]
    ]
    assert notice.reply_to_key == f"card:{case_id}:housing"
    params = notice.payload["params"]
    assert params["links"] == ["https://vk.com/wall-1_vk0", "https://vk.com/wall-1_vk1"]
    assert params["text"] == ANSWER and params["count"] == 2
    said = texts_for(DEFAULT_TEMPLATES_DIR, "ru").t("ui.by_hand", **params)
    assert "https://vk.com/wall-1_vk1" in said and "«Опубликовано»" in said
    card = [i for i in items if i.payload["view"] == "card"][-1]
    assert "Опубликовано 0 из 8" in card_text(card)
    assert "Ответить вручную: 2" in card_text(card)
    assert "Published 0 of 8" in card_text(card, "en")
    assert Action.MARK_PUBLISHED.value in card.payload["actions"]

    # Deliver: each comment gets exactly one reply; the card is redrawn once all settled.
    transport = RecordingTransport()
    worker = OutboxWorker(
        database.uow, {"telegram": transport}, clock, on_delivered=cases.progress.delivered
    )
    await worker.run_once()
    replies = [s for s in transport.sent if s.chat == str(GROUP)]
    assert len(replies) == 6 and {s.key for s in replies} == set(keys)
    assert cases.progress.pending
    assert await cases.progress.refresh() == 1
    assert not cases.progress.pending
    case = await cases.get(case_id)
    assert case is not None and case.answers_delivered == 6
    await worker.run_once()
    card = [s for s in transport.sent if s.payload.get("view") == "card"][-1]
    assert "Опубликовано 6 из 8" in card_text(OutboxItem("", "", OutboxOp.EDIT, card.payload, ""))


async def test_a_restart_mid_publication_sends_nothing_twice_and_the_card_is_paced(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    case_id = await publish_cluster(cases, directory, clock, comments=10, others=0)

    # The process dies after 4 replies went out.
    first = FlakyTelegram(budget=4)
    worker = OutboxWorker(
        database.uow, {"telegram": first}, clock, on_delivered=cases.progress.delivered
    )
    await worker.run_once()
    assert len([s for s in first.inner.sent if s.chat == str(GROUP)]) == 4
    # The card says so at once (nothing was shown yet); not again within the refresh time.
    assert await cases.progress.refresh() == 1
    case = await cases.get(case_id)
    assert case is not None and case.answers_delivered == 4

    # Queuing the same answer again (a repeated press, a replayed announce) adds nothing.
    async with database.uow() as uow:
        case = await uow.cases.get(case_id)
        assert case is not None
        mentions = await uow.mentions.for_case(case_id)
        before = replace(case, state=CaseState.APPROVED)
        again = await cases._cards.public_replies(uow, before, case, mentions, clock.now())
        assert len(again) == 10 and await uow.outbox.enqueue(again) == 0
        await uow.commit()
    assert not (
        await cases.act(case_id, ActionRequest(Action.PUBLISH), staff(directory, "spec"))
    ).ok

    # A new process: the rest go out, each once.
    second = RecordingTransport(_next_id=500)
    restarted = OutboxWorker(
        database.uow, {"telegram": second}, clock, on_delivered=cases.progress.delivered
    )
    await restarted.recover()
    clock.advance(timedelta(hours=2))  # the retry time the dead transport asked for
    await restarted.run_once()
    sent = [s for t in (first.inner, second) for s in t.sent if s.chat == str(GROUP)]
    assert len(sent) == 10 and len({s.key for s in sent}) == 10
    assert len([s for s in second.sent if s.chat == str(GROUP)]) == 6
    # Done: drawn at once, though the last drawing was moments ago.
    assert await cases.progress.refresh() == 1
    case = await cases.get(case_id)
    assert case is not None and case.answers_delivered == 10


async def test_progress_is_redrawn_at_most_every_twenty_seconds_while_replies_go_out(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    await publish_cluster(cases, directory, clock, comments=5, others=0)
    # The group takes one reply, then asks to wait a second: as Telegram's limits pace it.
    transport = FlakyTelegram(budget=1, after=1.0)
    worker = OutboxWorker(
        database.uow, {"telegram": transport}, clock, on_delivered=cases.progress.delivered
    )
    await worker.run_once()
    assert await cases.progress.refresh() == 1  # the first count is shown at once
    for delivered in (2, 3):
        clock.advance(timedelta(seconds=2))
        transport.budget = 1
        await worker.run_once()
        assert len([s for s in transport.inner.sent if s.chat == str(GROUP)]) == delivered
        assert await cases.progress.refresh() == 0  # within 20 s of the last drawing
    clock.advance(timedelta(seconds=17))
    assert await cases.progress.refresh() == 1  # 21 s: the count so far
    clock.advance(timedelta(seconds=2))
    transport.budget = 2
    await worker.run_once()
    assert await cases.progress.refresh() == 1  # the last reply settled: drawn at once
    assert not cases.progress.pending


async def test_the_rest_is_marked_published_by_hand_and_joiners_are_answered_too(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    case_id = await publish_cluster(cases, directory, clock, comments=2, others=3)
    spec = staff(directory, "spec")

    # After publishing: a comment joins and gets the same answer, once; a VK post joins and
    # waits for a person; the count grows.
    late = replace(comment(7, clock), author=replace(comment(7, clock).author, external_id="z"))
    await cases.intake(late, CaseOpening("housing"))
    await cases.intake(elsewhere(9, clock), CaseOpening("housing"))
    case = await cases.get(case_id)
    assert case is not None and case.mention_count == 7
    assert (case.answer_targets, case.hand_due) == (3, 4)
    public = [i for i in await outbox(database) if i.payload["view"] == "public_reply"]
    assert sorted(i.reply_to_key or "" for i in public) == ["ext:1000", "ext:1001", "ext:1007"]

    # /case lists every one of them with its link.
    thread = await cases.thread(case_id)
    assert thread is not None
    from bot.cases import publication

    waiting = publication.waiting_by_hand(case, thread.mentions, cases.publishable)
    assert [m.url for m in waiting] == [f"https://vk.com/wall-1_vk{n}" for n in (0, 1, 2, 9)]

    # One action marks them: who and when, how many, up to which mention.
    marked = await cases.act(case_id, ActionRequest(Action.MARK_PUBLISHED), spec)
    assert marked.ok, marked.error
    case = marked.case
    assert case is not None and case.state is CaseState.PUBLISHED
    assert (case.hand_due, case.hand_published) == (0, 4)
    (event,) = [e for e in marked.events if e.kind == Action.MARK_PUBLISHED.value]
    assert event.actor == "spec" and event.at == clock.now()
    assert event.payload["by_hand"] == 4
    assert event.payload["upto"] == max(m.id or 0 for m in thread.mentions)
    # Nothing left to mark: the button is gone, a press is refused.
    again = await cases.act(case_id, ActionRequest(Action.MARK_PUBLISHED), spec)
    assert isinstance(again.error, InvalidTransition)
    card = [i for i in await outbox(database) if i.payload["view"] == "card"][-1]
    assert Action.MARK_PUBLISHED.value not in card.payload["actions"]
    assert "Опубликовано 4 из 7</b> · вручную: 4" in card_text(card)
    assert "Ответить вручную" not in card_text(card)

    # One more VK post later: it waits for the next mark, which covers it alone.
    await cases.intake(elsewhere(11, clock), CaseOpening("housing"))
    case = await cases.get(case_id)
    assert case is not None and case.hand_due == 1
    thread = await cases.thread(case_id)
    assert thread is not None
    waiting = publication.waiting_by_hand(case, thread.mentions, cases.publishable)
    assert [m.url for m in waiting] == ["https://vk.com/wall-1_vk11"]
    assert (await cases.act(case_id, ActionRequest(Action.MARK_PUBLISHED), spec)).ok


async def test_a_single_mention_case_shows_no_count_and_a_marked_cluster_counts_all(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    single = await cases.intake(comment(1, clock), CaseOpening("housing"))
    assert single.case is not None and single.case.id is not None
    for request, who in (
        (ActionRequest(Action.DRAFT, text=ANSWER), spec),
        (ActionRequest(Action.APPROVE), appr),
        (ActionRequest(Action.PUBLISH), spec),
    ):
        assert (await cases.act(single.case.id, request, who)).ok
    card = [i for i in await outbox(database) if i.payload["view"] == "card"][-1]
    assert card.payload["publication"] is None
    assert Action.MARK_PUBLISHED.value not in card.payload["actions"]
    # Its one reply is counted, but the card has no count to show: no edit for it.
    worker = OutboxWorker(
        database.uow,
        {"telegram": RecordingTransport()},
        clock,
        on_delivered=cases.progress.delivered,
    )
    await worker.run_once()
    queued = len(await outbox(database))
    assert await cases.progress.refresh() == 0 and not cases.progress.pending
    assert len(await outbox(database)) == queued
    case = await cases.get(single.case.id)
    assert case is not None and case.answers_delivered == 1

    # A cluster nobody's bot can answer: a person posts it by hand, for all of them.
    vk = [replace(make_mention(f"v{n}", clock.now()), story_id="other") for n in range(3)]
    for mention in vk:
        got = await cases.intake(mention, CaseOpening("housing"))
    assert got.case is not None and got.case.id is not None
    case_id = got.case.id
    for request, who in (
        (ActionRequest(Action.DRAFT, text=ANSWER), spec),
        (ActionRequest(Action.APPROVE), appr),
        (ActionRequest(Action.MARK_PUBLISHED), spec),
    ):
        assert (await cases.act(case_id, request, who)).ok
    case = await cases.get(case_id)
    assert case is not None and (case.hand_published, case.hand_due) == (3, 0)
    card = [
        i for i in await outbox(database) if i.case_id == case_id and i.payload["view"] == "card"
    ][-1]
    assert "Опубликовано 3 из 3</b> · вручную: 3" in card_text(card)
    assert not [
        i
        for i in await outbox(database)
        if i.payload["view"] == "public_reply" and i.case_id == case_id
    ]


async def test_a_correction_edits_every_reply_the_bot_posted_and_only_those(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    case_id = await publish_cluster(cases, directory, clock, comments=3, others=1)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    transport = RecordingTransport()
    worker = OutboxWorker(database.uow, {"telegram": transport}, clock)
    await worker.run_once()
    replies = {s.message_id for s in transport.sent if s.chat == str(GROUP)}
    assert len(replies) == 3

    fixed = "Воду дадут до 20:00, бригада задерживается."
    for request, who in (
        (ActionRequest(Action.CORRECT, text=fixed), spec),
        (ActionRequest(Action.APPROVE), appr),
        (ActionRequest(Action.PUBLISH), spec),
    ):
        result = await cases.act(case_id, request, who)
        assert result.ok, (request.action, result.error)
    await worker.run_once()
    edits = [s for s in transport.sent if s.chat == str(GROUP) and s.op is OutboxOp.EDIT]
    assert {s.message_id for s in edits} == replies  # each reply edited in place, once
    assert {s.payload["text"] for s in edits} == {fixed}
    assert not [s for s in transport.sent if s.chat == str(GROUP) and s.op is OutboxOp.POST]
    case = await cases.get(case_id)
    assert case is not None and (case.answer_targets, case.hand_due) == (3, 1)


async def test_a_press_saved_meanwhile_does_not_put_back_an_older_count(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = service(tmp_path, database, clock)
    case_id = await publish_cluster(cases, directory, clock, comments=4, others=0)
    stale = await cases.get(case_id)  # a press read the case here ...
    assert stale is not None and stale.answers_delivered == 0
    async with database.uow() as uow:  # ... the hook counted 3 delivered ...
        await uow.cases.record_answers_delivered(case_id, 3)
        await uow.commit()
    async with database.uow() as uow:  # ... and the press saved its change
        await uow.cases.save(replace(stale, version=stale.version + 1), stale.version)
        await uow.commit()
    case = await cases.get(case_id)
    assert case is not None and case.answers_delivered == 3


async def test_a_person_who_wrote_twice_is_answered_once_and_a_joiner_of_theirs_not_again(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A second comment of the same person (or an edited comment, a reply letter) is covered
    by the answer under their first: nobody gets the same answer twice."""
    cases, directory = service(tmp_path, database, clock)
    twice = [replace(comment(n, clock), author=replace(comment(0, clock).author)) for n in (0, 1)]
    opened = [await cases.intake(m, CaseOpening("housing")) for m in [*twice, comment(2, clock)]]
    ids = {got.case.id for got in opened if got.case is not None}
    assert len(ids) == 1
    (case_id,) = ids
    assert case_id is not None
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    assert (await cases.act(case_id, ActionRequest(Action.DRAFT, text=ANSWER), spec)).ok
    assert (await cases.act(case_id, ActionRequest(Action.APPROVE), appr)).ok
    assert (await cases.act(case_id, ActionRequest(Action.PUBLISH), spec)).ok
    public = [i for i in await outbox(database) if i.payload["view"] == "public_reply"]
    assert sorted(i.reply_to_key or "" for i in public) == ["ext:1000", "ext:1002"]
    case = await cases.get(case_id)
    assert case is not None and (case.answer_targets, case.hand_due) == (2, 0)

    # The same person comments again after the answer: nothing more; a new person: answered.
    again = replace(comment(3, clock), author=comment(0, clock).author)
    await cases.intake(again, CaseOpening("housing"))
    await cases.intake(comment(4, clock), CaseOpening("housing"))
    public = [i for i in await outbox(database) if i.payload["view"] == "public_reply"]
    assert sorted(i.reply_to_key or "" for i in public) == ["ext:1000", "ext:1002", "ext:1004"]
    case = await cases.get(case_id)
    assert case is not None and case.answer_targets == 3 and case.mention_count == 5
