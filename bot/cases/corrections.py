"""Staff correct the sentiment Otklik gave: "Не негатив" on a card, /negative for a missed
mention. The mention keeps who set it and when (SentimentSource.STAFF); its author's counts
and labels follow, and crisis counts follow by themselves (they count stored sentiment).
The corrections are the examples a per-organisation retraining learns from
(MentionRepository.corrections).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.cases.authors import AuthorLabels, recount
from bot.cases.grouping import CaseOpening
from bot.model import AuthorLabel, Case, Mention, Sentiment, SentimentSource
from bot.ports import UnitOfWork

# How intake decides a mention, given its author's labels as the card shows them: the mention
# as it is to be stored (sentiment, codes) and the case it needs, if any. bot/intake/intake.py
# gives it (MentionIntake.plan); the case service calls it inside its unit of work.
IntakePlan = Callable[[Mention, frozenset[AuthorLabel]], tuple[Mention, CaseOpening | None]]


@dataclass(frozen=True, slots=True)
class Promotion:
    """What /negative did with a mention."""

    case: Case | None  # the mention's case: opened now, or the one it already had
    opened: bool = False  # False: it already had a case (or no mention was found)


@dataclass(frozen=True, slots=True)
class Dismissal:
    """What "Не негатив" on the triage list did with a mention."""

    mention: Mention
    changed: bool = True  # False: staff had decided it already, or it has a case by now


async def correct_sentiment(
    uow: UnitOfWork,
    mentions: Sequence[Mention],
    sentiment: Sentiment,
    by: str,
    now: datetime,
    labels: AuthorLabels,
) -> list[Mention]:
    """Set the mentions' sentiment as staff said, move their authors' counts and labels with
    them; the mentions as they now are."""
    stored = [m for m in mentions if m.id is not None]
    if not stored:
        return list(mentions)
    await uow.mentions.correct_sentiment([m.id for m in stored if m.id], sentiment, by, now)
    by_author: dict[int, list[Mention]] = defaultdict(list)
    for mention in stored:
        if mention.author_id is not None:
            by_author[mention.author_id].append(mention)
    for author_id, theirs in by_author.items():
        author = await uow.authors.get(author_id)
        if author is None:
            continue
        for mention in theirs:
            author = recount(author, mention.sentiment, sentiment)
        await uow.authors.save(author)
        await labels.relabel(uow, author, now)
    return [
        replace(m, sentiment=sentiment, sentiment_source=SentimentSource.STAFF) for m in mentions
    ]
