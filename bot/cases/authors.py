"""Author cards: one card per person behind every identity the sources give, with a tally of
their mentions by sentiment and the labels the playbook's thresholds give.

The bulk path (bot/intake/bulk.py) does the same for a whole batch with set-wise queries;
both keep the oldest card when two turn out to be one person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.cases.lifecycle import DomainError, InvalidInput, NoRight
from bot.clock import Clock
from bot.model import (
    SYSTEM_ACTOR,
    Author,
    AuthorLabel,
    Event,
    EventKind,
    GlobalRole,
    Mention,
    Sentiment,
)
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.settings.routing_rules import AuthorLabelsConfig
from bot.staff.rights import Actor

# Who may say an author speaks officially (their mentions then never open a case).
_LABELLERS = frozenset({GlobalRole.ADMIN, GlobalRole.DUTY})

_TALLY = {
    Sentiment.NEGATIVE: "negative_count",
    Sentiment.NEUTRAL: "neutral_count",
    Sentiment.POSITIVE: "positive_count",
    Sentiment.UNCERTAIN: "neutral_count",  # until a person decides
}


async def record_author(uow: UnitOfWork, mention: Mention, now: datetime) -> Author:
    """The mention's author card with the mention counted on it."""
    return await count_mention(uow, await author_of(uow, mention, now), mention, now)


async def author_of(uow: UnitOfWork, mention: Mention, now: datetime) -> Author:
    """The one author behind every identity the source gives, as the card stood before this
    mention; authors the source links (same e-mail, phone or linked profile) are merged into
    one card, and a new card is made for a stranger."""
    identities = (mention.author, *mention.linked)
    owners = await uow.links.authors_of([(i.channel, i.external_id) for i in identities])
    for gone in owners[1:]:
        await merge_cards(uow, owners[0], gone, SYSTEM_ACTOR, now, "linked identities")
    author = await uow.authors.get(owners[0]) if owners else None
    if author is None:
        author = await uow.authors.add(
            Author(
                id=None,
                display_name=mention.author.display_name or mention.author.external_id,
                identities=identities,
                first_seen_at=now,
            )
        )
    return author


async def count_mention(uow: UnitOfWork, author: Author, mention: Mention, now: datetime) -> Author:
    """Count the mention on its author's card, with the identities it brought."""
    identities = (mention.author, *mention.linked)
    tally = _TALLY[mention.sentiment or Sentiment.NEUTRAL]
    known = {(i.channel, i.external_id) for i in author.identities}
    new_identities = tuple(i for i in identities if (i.channel, i.external_id) not in known)
    author = replace(
        author,
        identities=(*author.identities, *new_identities),
        last_seen_at=now,
        **{tally: getattr(author, tally) + 1},
    )
    await uow.authors.save(author)
    return author


async def merge_cards(
    uow: UnitOfWork, keep: int, gone: int, actor: str, now: datetime, why: str
) -> None:
    """Card `gone` becomes part of `keep`, and the audit trail says so: every merge, the
    administrator's and the automatic ones, goes through here."""
    await uow.links.merge_authors(keep, gone)
    payload = {"keep": keep, "gone": gone, "why": why}
    await uow.events.append([Event(None, now, actor, EventKind.AUTHOR_MERGED, None, None, payload)])


def recount(author: Author, before: Sentiment | None, after: Sentiment) -> Author:
    """The card once one of its mentions changed sentiment (a staff correction)."""
    was, now = _TALLY[before or Sentiment.NEUTRAL], _TALLY[after]
    if was == now:
        return author
    author = replace(author, **{was: max(0, getattr(author, was) - 1)})
    return replace(author, **{now: getattr(author, now) + 1})


class AuthorLabels:
    """Labels from the playbook's thresholds, and the administrator's merge of two cards."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, rules: AuthorLabelsConfig
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._rules = rules

    async def relabel(self, uow: UnitOfWork, author: Author, now: datetime) -> Author:
        """Labels from the thresholds; "do not engage" is only ever set by staff."""
        assert author.id is not None
        rules = self._rules
        labels = set(author.labels) - {AuthorLabel.SYSTEMATIC_CRITIC, AuthorLabel.OPINION_LEADER}
        negative = await uow.links.negative_since(author.id, now - rules.critic_window)
        if negative >= rules.critic_negative_count:
            labels.add(AuthorLabel.SYSTEMATIC_CRITIC)
        total = author.total_mentions
        if (
            total
            and author.positive_count / total >= rules.leader_positive_share
            and await uow.links.max_reach(author.id) >= rules.leader_min_reach
        ):
            labels.add(AuthorLabel.OPINION_LEADER)
        if labels != set(author.labels):
            author = replace(author, labels=frozenset(labels))
            await uow.authors.save(author)
        return author

    async def mark_official(
        self, case_id: int, official: bool, actor: Actor
    ) -> Author | DomainError | None:
        """/official N: the author of case N speaks officially (or no longer does); their
        mentions are then stored as information, never as complaints. Administrators and the
        duty officer only. None: no such case."""
        if not actor.global_roles & _LABELLERS:
            return NoRight(action="official", department="*")
        async with self._uow() as uow:
            firsts = await uow.mentions.first_of_cases([case_id])
            mention = firsts.get(case_id)
            author = (
                await uow.authors.get(mention.author_id) if mention and mention.author_id else None
            )
            if author is None:
                return None
            labels = author.labels | {AuthorLabel.OFFICIAL}
            if not official:
                labels = author.labels - {AuthorLabel.OFFICIAL}
            if labels != author.labels:
                author = replace(author, labels=labels)
                await uow.authors.save(author)
                await uow.commit()
        return author

    async def merge(self, keep: int, gone: int, actor: Actor) -> DomainError | None:
        """An administrator's merge of two author cards (the same person on two channels)."""
        if GlobalRole.ADMIN not in actor.global_roles:
            return NoRight(action="merge", department="*")
        now = self._clock.now()
        async with self._uow() as uow:
            if await uow.authors.get(keep) is None or await uow.authors.get(gone) is None:
                return InvalidInput(field="author", limit=None)
            await merge_cards(uow, keep, gone, actor.id, now, "administrator")
            merged = await uow.authors.get(keep)
            assert merged is not None
            await self.relabel(uow, merged, now)
            await uow.commit()
        return None
