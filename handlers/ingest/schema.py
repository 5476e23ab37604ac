"""A mention as the API and `otklik import` accept it: the untrusted shape, validated.

Light on purpose (pydantic and bot.model only): the import's reading process imports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.model import (
    MAX_MENTION_TEXT,
    MAX_NAME,
    MAX_URL,
    Identity,
    Mention,
    Sentiment,
    SentimentSource,
)

Short = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Url = Annotated[str, Field(max_length=MAX_URL, pattern=r"^https?://")]

# A validated mention without its source and arrival time, as a flat tuple (see
# MentionIn.packed): what the import's reading process sends, cheap to pickle.
Packed = tuple[Any, ...]


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Short
    name: Annotated[str, Field(max_length=MAX_NAME)] = ""
    channel: Short | None = None  # defaults to the source name
    profile_url: Url | None = None


class MentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: Short
    text: Annotated[str, Field(min_length=1, max_length=MAX_MENTION_TEXT)]
    author: AuthorIn
    url: Url | None = None
    published_at: datetime | None = None
    language: Annotated[str, Field(max_length=8)] | None = None
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    sentiment_score: float | None = None
    reach: Annotated[int, Field(ge=0)] = 0
    codes: Annotated[list[Short], Field(max_length=50)] = []
    story_id: Short | None = None
    reply_to_url: Url | None = None

    def to_domain(self, source: str, received_at: datetime) -> Mention:
        return unpack(self.packed(), source, received_at)

    def packed(self, linked: tuple[tuple[str, str, str], ...] = ()) -> Packed:
        """Everything but the source and the arrival time; `linked` are further identities
        of the author as (channel, id, name)."""
        author = self.author
        return (
            self.external_id,
            self.text,
            author.channel,
            author.id,
            author.name,
            author.profile_url,
            self.published_at,
            self.url,
            self.language,
            self.sentiment,
            self.sentiment_score,
            self.reach,
            tuple(self.codes),
            self.story_id,
            self.reply_to_url,
            linked,
        )


_SENTIMENTS = {s.value: s for s in Sentiment}


def unpack(packed: Packed, source: str, received_at: datetime) -> Mention:
    """The mention of MentionIn.packed, received from `source` at `received_at`."""
    (
        external_id,
        text,
        channel,
        author_id,
        name,
        profile_url,
        published_at,
        url,
        language,
        sentiment,
        score,
        reach,
        codes,
        story_id,
        reply_to_url,
        linked,
    ) = packed
    return Mention(
        source=source,
        external_id=external_id,
        text=text,
        author=Identity(channel or source, author_id, name, profile_url),
        received_at=received_at,
        published_at=published_at,
        url=url,
        language=language,
        # No sentiment from the source: intake classifies the text.
        sentiment=_SENTIMENTS[sentiment] if sentiment else None,
        sentiment_source=SentimentSource.SOURCE,
        sentiment_score=score,
        reach=reach,
        codes=codes,
        story_id=story_id,
        reply_to_url=reply_to_url,
        linked=tuple(Identity(*identity) for identity in linked),
    )
