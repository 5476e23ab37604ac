"""Official information is not a complaint.

A ministry's announcement of a water cut reads like a complaint to a classifier. Mentions from
sources or accounts the config marks official (config.yaml `official`, `api.sources[].official`,
`feeds[].official`) and from authors labelled `official` are stored as neutral, by rule, and
open no case, whatever the source or the classifier said; only staff can say otherwise
(/negative, SentimentSource.STAFF).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from bot.model import AuthorLabel, Mention, Sentiment, SentimentSource
from bot.settings.config import Config


@dataclass(frozen=True, slots=True)
class Officials:
    sources: frozenset[str] = frozenset()  # source names, as Mention.source
    identities: frozenset[tuple[str, str]] = frozenset()  # (channel, external id)

    @classmethod
    def from_config(cls, config: Config) -> Officials:
        return cls(config.official_sources, config.official_identities)

    def speaks_for(self, mention: Mention, labels: Iterable[AuthorLabel] = ()) -> bool:
        """Whether the mention is official information (staff corrections aside)."""
        if mention.sentiment_source is SentimentSource.STAFF:
            return False
        if mention.source in self.sources or AuthorLabel.OFFICIAL in labels:
            return True
        identities = self.identities
        return bool(identities) and any(
            (i.channel, i.external_id) in identities for i in (mention.author, *mention.linked)
        )


def as_information(mention: Mention) -> Mention:
    """The mention as official information: neutral, by rule."""
    return replace(
        mention,
        sentiment=Sentiment.NEUTRAL,
        sentiment_source=SentimentSource.RULE,
        sentiment_score=None,
    )
