"""Related mentions join one case; one author card across channels, with labels."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.model import (
    Action,
    AuthorLabel,
    EventKind,
    GlobalRole,
    Identity,
    IgnoreReason,
    Outcome,
    Sentiment,
)
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from tests.doubles.support import make_config, make_mention

HOUSING = CaseOpening("housing")


@pytest.fixture
def cases(tmp_path: Path, database: Database, clock: FrozenClock) -> CaseService:
    config = make_config(tmp_path, database.url)
    playbook = load_playbook(config.playbooks.path)
    return CaseService(
        database.uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=playbook.routing,
    )


async def test_story_id_and_thread_url_join_the_open_case(
    cases: CaseService, clock: FrozenClock, database: Database
) -> None:
    first = await cases.intake(replace(make_mention("1", clock.now()), story_id="s-7"), HOUSING)
    same_story = await cases.intake(
        replace(make_mention("2", clock.now()), story_id="s-7"), HOUSING
    )
    post = "https://vk.com/wall-1_500"
    under_post = await cases.intake(
        replace(make_mention("3", clock.now()), reply_to_url=post), HOUSING
    )
    also_under = await cases.intake(
        replace(make_mention("4", clock.now()), reply_to_url=post), HOUSING
    )
    assert first.case and same_story.case and under_post.case and also_under.case
    assert same_story.case.id == first.case.id and same_story.case.mention_count == 2
    assert also_under.case.id == under_post.case.id != first.case.id
    thread = await cases.thread(first.case.id)  # type: ignore[arg-type]
    assert thread is not None
    assert [e.kind for e in thread.events] == [EventKind.CREATED, EventKind.MENTION_ADDED]
    assert len(thread.mentions) == 2
    # The card is edited to show "+1 related".
    async with database.uow() as uow:
        items = [await uow.outbox.get(n) for n in range(1, 20)]
    folded = [i for i in items if i and i.case_id == first.case.id]
    assert folded[-1].payload["case"]["mention_count"] == 2


async def test_same_author_same_subject_within_the_window_only(
    cases: CaseService, clock: FrozenClock
) -> None:
    one = await cases.intake(make_mention("1", clock.now(), author="a"), HOUSING)
    two = await cases.intake(make_mention("2", clock.now(), author="a"), HOUSING)
    other_subject = await cases.intake(
        make_mention("3", clock.now(), author="a"), CaseOpening("transport")
    )
    clock.advance(timedelta(hours=13))
    later = await cases.intake(make_mention("4", clock.now(), author="a"), HOUSING)
    assert one.case and two.case and other_subject.case and later.case
    assert two.case.id == one.case.id
    assert other_subject.case.id != one.case.id
    assert later.case.id != one.case.id


async def test_a_closed_case_is_not_joined(cases: CaseService, clock: FrozenClock) -> None:
    spec = Actor("spec", "Анна", {"housing": frozenset({"specialist"})})  # type: ignore[dict-item]
    one = await cases.intake(make_mention("1", clock.now(), author="a"), HOUSING)
    assert one.case and one.case.id
    closed = await cases.act(
        one.case.id, ActionRequest(Action.CLOSE, outcome=Outcome.ANSWERED), spec
    )
    assert closed.ok, closed.error
    two = await cases.intake(make_mention("2", clock.now(), author="a"), HOUSING)
    assert two.case and two.case.id != one.case.id


async def test_linked_identities_make_one_author_card(
    cases: CaseService, clock: FrozenClock
) -> None:
    email = Identity("email", "petr@example.org", "Пётр")
    phone = Identity("phone", "+79990001122", "")
    vk = await cases.intake(
        replace(make_mention("1", clock.now(), author="vk1"), linked=(email,)), None
    )
    by_mail = await cases.intake(
        replace(make_mention("2", clock.now()), author=email, sentiment=Sentiment.POSITIVE), None
    )
    assert vk.mention and by_mail.mention
    assert vk.mention.author_id == by_mail.mention.author_id
    # A third channel, known by phone, then a message that links the phone to the e-mail:
    tg = await cases.intake(
        replace(
            make_mention("3", clock.now()), author=Identity("telegram", "555", "P"), linked=(phone,)
        ),
        None,
    )
    assert tg.mention and tg.mention.author_id != vk.mention.author_id
    await cases.intake(replace(make_mention("4", clock.now()), author=phone, linked=(email,)), None)
    thread_author = await _author(cases, vk.mention.author_id)
    assert thread_author is not None
    assert {(i.channel, i.external_id) for i in thread_author.identities} >= {
        ("vk", "vk1"),
        ("email", "petr@example.org"),
        ("phone", "+79990001122"),
        ("telegram", "555"),
    }
    assert thread_author.total_mentions == 4
    assert await _author(cases, tg.mention.author_id) is None  # merged away
    async with cases._uow() as uow:
        (merge,) = await uow.events.of_kind(EventKind.AUTHOR_MERGED)
    assert merge.actor == "system"
    assert merge.payload == {
        "keep": vk.mention.author_id,
        "gone": tg.mention.author_id,
        "why": "linked identities",
    }


async def test_labels_from_thresholds_and_staff(cases: CaseService, clock: FrozenClock) -> None:
    for n in range(5):
        result = await cases.intake(make_mention(str(n), clock.now(), author="critic"), None)
        clock.advance(timedelta(days=1))
    assert result.mention and result.mention.author_id
    critic = await _author(cases, result.mention.author_id)
    assert critic and AuthorLabel.SYSTEMATIC_CRITIC in critic.labels

    leader = await cases.intake(
        replace(
            make_mention("L", clock.now(), author="blogger"),
            sentiment=Sentiment.POSITIVE,
            reach=50_000,
        ),
        None,
    )
    assert leader.mention and leader.mention.author_id
    card = await _author(cases, leader.mention.author_id)
    assert card and card.labels == {AuthorLabel.OPINION_LEADER}

    spec = Actor("spec", "Анна", {"housing": frozenset({"specialist"})})  # type: ignore[dict-item]
    troll = await cases.intake(make_mention("T", clock.now(), author="troll"), HOUSING)
    assert troll.case and troll.case.id and troll.mention
    await cases.act(
        troll.case.id, ActionRequest(Action.IGNORE, reason=IgnoreReason.DO_NOT_ENGAGE), spec
    )
    card = await _author(cases, troll.mention.author_id)  # type: ignore[arg-type]
    assert card and AuthorLabel.DO_NOT_ENGAGE in card.labels


async def test_manual_merge_needs_an_admin(cases: CaseService, clock: FrozenClock) -> None:
    a = await cases.intake(make_mention("1", clock.now(), author="x"), None)
    b = await cases.intake(make_mention("2", clock.now(), author="y"), None)
    assert a.mention and b.mention and a.mention.author_id and b.mention.author_id
    nobody = Actor("spec", "Анна")
    admin = Actor("admin", "Админ", global_roles=frozenset({GlobalRole.ADMIN}))
    assert await cases.merge_authors(a.mention.author_id, b.mention.author_id, nobody)
    assert await cases.merge_authors(a.mention.author_id, b.mention.author_id, admin) is None
    merged = await _author(cases, a.mention.author_id)
    assert merged and merged.total_mentions == 2
    assert await _author(cases, b.mention.author_id) is None
    # The audit trail names who merged which cards.
    async with cases._uow() as uow:
        (merge,) = await uow.events.of_kind(EventKind.AUTHOR_MERGED)
    assert merge.actor == "admin" and merge.case_id is None
    assert merge.payload == {
        "keep": a.mention.author_id,
        "gone": b.mention.author_id,
        "why": "administrator",
    }


async def _author(cases: CaseService, author_id: int):  # type: ignore[no-untyped-def]
    async with cases._uow() as uow:
        return await uow.authors.get(author_id)


async def test_one_new_author_arriving_twice_at_once_gets_one_card(
    cases: CaseService, clock: FrozenClock
) -> None:
    import asyncio

    results = await asyncio.gather(
        *(cases.intake(make_mention(str(n), clock.now(), author="same"), None) for n in range(4))
    )
    authors = {r.mention.author_id for r in results if r.mention}
    assert len(authors) == 1 and all(r.mention for r in results)
