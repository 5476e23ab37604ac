"""A mention as the API and `otklik import` accept it: the untrusted shape, validated.

Light on purpose (pydantic and bot.model only): the import's reading process imports it.

Types are strict (`"reach": "10"` or `false` is refused, not coerced) and every value must be
storable on both databases: PostgreSQL refuses NUL in text and no database takes a lone UTF-16
surrogate or an integer beyond BIGINT. Free text (the mention, the author's name) is cleaned,
because a citizen's complaint must not be lost to an invisible character: NUL is dropped and a
lone surrogate becomes U+FFFD. Identifiers, URLs and codes are refused instead: changing them
could make two different ids one, and dedup keys on them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bot.model import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_CAPTION,
    MAX_MENTION_TEXT,
    MAX_MIME,
    MAX_NAME,
    MAX_URL,
    Attachment,
    AttachmentKind,
    Identity,
    Mention,
    Sentiment,
    SentimentSource,
)

MAX_REACH = 2**63 - 1  # the BIGINT column
MAX_CHANNEL = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: object) -> object:
    """Free text made storable: NUL dropped, lone surrogates replaced by U+FFFD."""
    if not isinstance(value, str):
        return value  # the str type says what is wrong
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _no_nul(value: str) -> str:
    # Lone surrogates are refused by the str type itself.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _rfc3339(value: object) -> object:
    # Numbers would pass as Unix time and a bare date as midnight: both are guesses.
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError(
            "must be a date-time with an offset (RFC 3339), e.g. 2026-11-20T10:00:00+03:00"
        )
    if not isinstance(value, str | datetime):
        raise ValueError("must be a date-time string (RFC 3339) with an offset")
    return value


def _whole_float_as_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_REACH:
        return int(value)
    return value


def _in_utc_range(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range once converted to UTC") from None
    return value


_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$"
)

# The same rules in the OpenAPI document (json_schema_extra: documented; _no_nul checks).
_NO_NUL = {"pattern": r"^[^\u0000]*$"}
_SOME_TEXT = {"pattern": r"[^\u0000]", "description": "NUL characters are dropped"}

Short = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, json_schema_extra=_NO_NUL),
    AfterValidator(_no_nul),
]
Url = Annotated[
    str,
    Field(
        max_length=MAX_URL,
        pattern=r"^https?://",
        json_schema_extra={"pattern": r"^https?://[^\u0000]*$"},
    ),
    AfterValidator(_no_nul),
]
FreeText = Annotated[str, BeforeValidator(clean_text)]
MentionText = Annotated[
    FreeText, Field(min_length=1, max_length=MAX_MENTION_TEXT, json_schema_extra=_SOME_TEXT)
]
Language = Annotated[str, Field(max_length=8, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
# Strict: "10" and false are refused. 10.0 is a JSON integer (JSON has one number type).
Reach = Annotated[int, Field(strict=True, ge=0, le=MAX_REACH), BeforeValidator(_whole_float_as_int)]
Moment = Annotated[
    datetime,
    Field(json_schema_extra={"format": "date-time"}),
    BeforeValidator(_rfc3339),
    AfterValidator(_in_utc_range),
]

# A validated mention without its source and arrival time, as a flat tuple (see
# MentionIn.packed): what the import's reading process sends, cheap to pickle.
Packed = tuple[Any, ...]


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Short
    name: Annotated[FreeText, Field(max_length=MAX_NAME)] = ""
    # Defaults to the source name; as long as a source name may be (the identity column).
    channel: Annotated[Short, Field(max_length=MAX_CHANNEL)] | None = None
    profile_url: Url | None = None


FileUrl = Annotated[
    str,
    Field(
        max_length=MAX_URL,
        pattern=r"^(https?|mxc)://[^/\s]+(/\S*)?$",
        json_schema_extra={"pattern": r"^(https?|mxc)://[^/\s\u0000]+(/[^\s\u0000]*)?$"},
    ),
    AfterValidator(_no_nul),
]


class AttachmentIn(BaseModel):
    """A photo or file that came with the mention, by a link Otklik never fetches: the card
    lists it and links to it; a photo on a Matrix media repository (mxc://) is shown under
    the card in Matrix rooms."""

    model_config = ConfigDict(extra="forbid")
    url: FileUrl
    name: Annotated[FreeText, Field(max_length=MAX_NAME)] = ""
    mime: Annotated[str, Field(max_length=MAX_MIME, pattern=r"^[\w.+-]+/[\w.+-]+$")] | None = None
    # Strict as reach is: 12.0 is a JSON integer, "12" is refused.
    size: (
        Annotated[
            int,
            Field(strict=True, ge=0, le=MAX_ATTACHMENT_BYTES),
            BeforeValidator(_whole_float_as_int),
        ]
        | None
    ) = None
    # Told from the mime type when not given (image/* a photo, video/* a video, …).
    kind: Literal["photo", "document", "video", "audio", "other"] | None = None
    caption: Annotated[FreeText, Field(max_length=MAX_CAPTION)] = ""

    def to_domain(self) -> Attachment:
        mime = self.mime or ""
        kind = (
            AttachmentKind(self.kind)
            if self.kind
            else _KIND_OF_MIME.get(
                mime.split("/", 1)[0], AttachmentKind.DOCUMENT if mime else AttachmentKind.OTHER
            )
        )
        return Attachment(kind, self.url, self.name, mime, self.size, self.caption)


_KIND_OF_MIME = {
    "image": AttachmentKind.PHOTO,
    "video": AttachmentKind.VIDEO,
    "audio": AttachmentKind.AUDIO,
}


class MentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: Short
    text: MentionText
    author: AuthorIn
    url: Url | None = None
    published_at: Moment | None = None
    language: Language | None = None
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    sentiment_score: Annotated[float, Field(strict=True, allow_inf_nan=False)] | None = None
    reach: Reach = 0
    codes: Annotated[list[Short], Field(max_length=50)] = []
    story_id: Short | None = None
    reply_to_url: Url | None = None
    attachments: Annotated[list[AttachmentIn], Field(max_length=MAX_ATTACHMENTS)] = []

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
            tuple(a.to_domain() for a in self.attachments),
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
        attachments,
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
        attachments=attachments,
    )
