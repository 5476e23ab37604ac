"""Splitting a wrongly joined mention off its case (/split N, !split N): the mention opens a
case of its own in the same department, with its own card; both cases' counts shrink and
grow, and the old case's history says who split what."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.cases.cards import Cards
from bot.cases.lifecycle import DomainError, NoRight
from bot.cases.outcomes import audit_refusal
from bot.messages.outbox import OutboxItem
from bot.model import Case, CaseState, Event, EventKind
from bot.ports import UnitOfWork
from bot.staff.rights import Actor

SPLIT = "split"  # what a refusal's audit event and error name


class UnknownMention(DomainError):
    code = "unknown_mention"


class SplitFirst(DomainError):
    """The first mention is the case: there is nothing to split it from."""

    code = "split_first"


async def split_mention(
    uow: UnitOfWork, cards: Cards, mention_id: int, actor: Actor, now: datetime
) -> tuple[Case, Case] | DomainError:
    """(the old case shrunk, the new case), or why not; inside the caller's transaction.
    Department staff only: a refusal is audited on the case."""
    mention = await uow.mentions.get(mention_id)
    case = await uow.cases.get(mention.case_id) if mention and mention.case_id else None
    if mention is None or mention.id is None or case is None or case.id is None:
        return UnknownMention(mention_id=mention_id)
    if not (actor.is_staff and actor.roles_in(case.department)):
        await audit_refusal(uow, case, actor, SPLIT, now, "no_right")
        return NoRight(action=SPLIT, department=case.department)
    first = (await uow.mentions.first_of_cases([case.id]))[case.id]
    if first.id == mention.id or case.drill:
        return SplitFirst(mention_id=mention_id, case_id=case.id)

    (opened,) = await uow.cases.add_many(
        [
            Case(
                id=None,
                department=case.department,
                state=CaseState.NEW,
                priority=case.priority,
                created_at=now,
                source=mention.source,
                sla_policy=case.sla_policy,
                reaction_due_at=case.reaction_due_at,
                first_touch_due_at=case.first_touch_due_at,
                answer_due_at=case.answer_due_at,
                resolution_due_at=case.resolution_due_at,
                codes=mention.codes,
                last_mention_at=mention.received_at,
                sources=(mention.source,),
            )
        ]
    )
    assert opened.id is not None
    await uow.mentions.attach_many([(mention.id, opened.id)])
    author = mention.author_id
    still = author is not None and bool(await uow.links.authors_in_cases([case.id], {author}))
    shrunk = replace(
        case,
        mention_count=max(case.mention_count - 1, 1),
        similar_count=max(case.similar_count - 1, 0),
        people_count=case.people_count - (0 if still or author is None else 1),
        version=case.version + 1,
    )
    await uow.cases.save(shrunk, case.version)
    payload = {"mention_id": mention.id, "to_case": opened.id}
    created = {
        "mention_id": mention.id,
        "department": opened.department,
        "priority": opened.priority.value,
        "drill": False,
        "split_from": case.id,
    }
    await uow.events.append(
        [
            Event(case.id, now, actor.id, EventKind.MENTION_SPLIT, case.state, case.state, payload),
            Event(opened.id, now, actor.id, EventKind.CREATED, None, opened.state, created),
        ]
    )
    authors = await uow.authors.cards_of(
        sorted({m.author_id for m in (first, mention) if m.author_id})
    )
    items: list[OutboxItem] = []
    items += cards.to_post(opened, mention, authors.get(mention.author_id or 0), now)
    items += cards.to_edit(shrunk, first, authors.get(first.author_id or 0), now)
    await uow.outbox.enqueue(items)
    return shrunk, opened
