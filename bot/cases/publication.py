"""Answering a cluster once: the approved answer of a case with several mentions goes under
every mention the bot can answer, each its own outbox item; the rest wait for a person.

A publication of a new text starts a round (`start_round`): the case counts the replies it
queued (`answer_targets`) and the mentions only a person can answer (`hand_due`). Delivered
replies are counted from the outbox (bot/cases/progress.py keeps `answers_delivered` and the
card up to date, coalesced); MARK_PUBLISHED on a published case marks the waiting ones
answered by hand (bot/cases/lifecycle.py). A mention that joins a published case gets the same
answer once, or waits for a person (`joined`). Messages: bot/cases/cards.py
(Cards.public_replies); the card's line: `facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.messages.views import PublicationFacts
from bot.model import Case, CaseState, Mention

# The card and /case name this many of the mentions to answer by hand; /case lists them all.
BY_HAND_LINKS = 10

Answerable = Callable[[Mention], bool]


def person_of(mention: Mention) -> tuple[str, str]:
    return (mention.author.channel, mention.author.external_id)


def firsts_per_person(mentions: Sequence[Mention]) -> list[Mention]:
    """Each person's first mention, oldest first: a cluster answers a person once (a second
    comment, a reply letter or an edited comment of theirs would otherwise get it again)."""
    seen: set[tuple[str, str]] = set()
    firsts: list[Mention] = []
    for mention in mentions:
        if person_of(mention) not in seen:
            seen.add(person_of(mention))
            firsts.append(mention)
    return firsts


def reply_suffix(mention: Mention, first: Mention) -> str:
    """What a reply's ref and key add for one mention. The mention a case was opened for
    keeps the keys a single answer always had: a queue from before upgrading repeats nothing."""
    return "" if mention.id == first.id else f":{mention.id}"


def start_round(case: Case, mentions: Sequence[Mention], answerable: Answerable) -> Case:
    """The case just published a new text by the bot: every person it can answer gets a
    reply (under their first mention), the others wait for a person."""
    people = firsts_per_person(mentions)
    targets = sum(1 for m in people if answerable(m))
    return replace(
        case,
        answer_targets=targets,
        answers_delivered=0,
        hand_due=len(people) - targets,
        hand_published=0,
        hand_marked_upto=0,
    )


def marked_round(case: Case, mentions: Sequence[Mention]) -> Case:
    """A person posted the answer by hand (MARK_PUBLISHED from APPROVED): for every person."""
    return replace(
        case,
        answer_targets=0,
        answers_delivered=0,
        hand_due=0,
        hand_published=len(firsts_per_person(mentions)),
        hand_marked_upto=max((m.id or 0 for m in mentions), default=0),
    )


def answers_joiners(case: Case) -> bool:
    """Whether a mention joining the case now is owed its published answer."""
    return case.state is CaseState.PUBLISHED and (case.answer_targets + case.hand_due) > 0


def joined(case: Case, answerable: bool) -> Case:
    """A mention joined a published case: the bot answers it too, or a person must."""
    if not answers_joiners(case):
        return case
    if answerable:
        return replace(case, answer_targets=case.answer_targets + 1)
    return replace(case, hand_due=case.hand_due + 1)


def waiting_by_hand(
    case: Case, mentions: Sequence[Mention], answerable: Answerable
) -> list[Mention]:
    """The mentions only a person can answer that no mark covers yet, oldest first: each
    person's first."""
    if case.hand_due <= 0:
        return []
    return [
        m
        for m in firsts_per_person(mentions)
        if (m.id or 0) > case.hand_marked_upto and not answerable(m)
    ]


def facts(case: Case) -> PublicationFacts | None:
    """The card's «Опубликовано 120 из 137 · вручную: 5»: only for an answer to more than
    one mention."""
    total = case.answer_targets + case.hand_due + case.hand_published
    if total <= 1:
        return None
    delivered = min(case.answers_delivered, case.answer_targets)
    return {
        "done": delivered + case.hand_published,
        "total": total,
        "by_hand": case.hand_published,
        "waiting_by_hand": case.hand_due,
    }
