"""A source's own record (monitoring JSON, a spreadsheet row) as the API's mention shape.

Pure: no I/O. `RecordMapper` compiles a `SourceMapping` once; `map_record` is the one-off form.
The result has the shape handlers.ingest.api.MentionIn validates, plus "identities": the e-mail and
phone the source gives for the author, which become `Mention.linked` (one author card).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final

from bot.settings.connections import SourceMapping

__all__ = [
    "AUTHOR_FIELDS",
    "IDENTITY_FIELDS",
    "MENTION_FIELDS",
    "REQUIRED_FIELDS",
    "MappingError",
    "RecordMapper",
    "check_mapping",
    "map_record",
]

# Our field names, as `SourceMapping.fields` keys and identity-mapped column titles use them.
MENTION_FIELDS: Final = (
    "external_id",
    "text",
    "url",
    "published_at",
    "language",
    "sentiment",
    "sentiment_score",
    "reach",
    "codes",
    "story_id",
    "reply_to_url",
)
AUTHOR_FIELDS: Final = ("author.id", "author.name", "author.channel", "author.profile_url")
IDENTITY_FIELDS: Final = ("author.email", "author.phone")  # -> "identities", not MentionIn
ALL_FIELDS: Final = (*MENTION_FIELDS, *AUTHOR_FIELDS, *IDENTITY_FIELDS)
REQUIRED_FIELDS: Final = ("external_id", "text", "author.id")
SENTIMENTS: Final = ("negative", "neutral", "positive")

_MISSING: Final = object()
_CODE_SPLIT = re.compile(r"[,;]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-]+$")
_SPACES = re.compile(r"[\s\u00a0\u202f]")  # thousands separators in "12 345"
_MS_EPOCH = 100_000_000_000  # a Unix time this large is in milliseconds (seconds: year 5138)


class MappingError(ValueError):
    """A record cannot be mapped. `field` is our field name ("author.id") of the first
    problem; `problems` lists every field's, and `partial` holds what did map, so a caller
    can report all that is wrong with the record at once."""

    def __init__(
        self,
        field: str,
        message: str,
        problems: list[tuple[str, str]] | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        self.field = field
        self.message = message
        self.problems = problems or [(field, message)]
        self.partial = partial or {}
        super().__init__(f"{field}: {message}")


def check_mapping(mapping: SourceMapping | None) -> list[tuple[str, str]]:
    """Problems of a mapping itself, as (key path, message): unknown field names, constants
    that can never be valid. Checked once, before any record."""
    if mapping is None:
        return []
    problems: list[tuple[str, str]] = []
    for section, names in (("fields", mapping.fields), ("constants", mapping.constants)):
        for name in names:
            if name not in ALL_FIELDS:
                problems.append(
                    (f"{section}.{name}", f"unknown field (known: {', '.join(ALL_FIELDS)})")
                )
    for name, value in mapping.constants.items():
        if name in ALL_FIELDS:
            try:
                (_CONVERTERS.get(name) or _text)(value, _Context(mapping, UTC))
            except MappingError as error:
                problems.append((f"constants.{name}", error.message))
    return problems


def map_record(
    record: Mapping[str, Any], mapping: SourceMapping | None, tz: tzinfo
) -> dict[str, Any]:
    """One record in the MentionIn shape. `mapping` None: fields are looked up by our own
    names. Naive dates are taken to be in `tz` (the organisation's time zone)."""
    return RecordMapper(mapping, tz)(record)


class RecordMapper:
    """A compiled mapping: build once per source or file, call once per record."""

    def __init__(self, mapping: SourceMapping | None, tz: tzinfo) -> None:
        problems = check_mapping(mapping)
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        self.mapping = mapping
        fields = mapping.fields if mapping else {}
        constants = mapping.constants if mapping else {}
        context = _Context(mapping, tz)
        # Unlisted fields are looked up under their own name: a source that already uses our
        # names for some fields needs a mapping for the others only.
        self.paths: dict[str, str] = {name: fields.get(name, name) for name in ALL_FIELDS}
        # Flat on purpose: this runs once per record.
        self._steps: list[_Step] = []
        for name in ALL_FIELDS:
            convert = _CONVERTERS.get(name)
            fallback = _MISSING
            if name in constants:
                fallback = (convert or _text)(constants[name], context)
            path = self.paths[name]
            parts = tuple(path.split(".")) if "." in path else None
            bound = _bind(convert, context) if convert else None
            slot = _IDENTITY if name in IDENTITY_FIELDS else _AUTHOR if "." in name else _TOP
            key = name.rpartition(".")[2]
            self._steps.append((key, path, parts, fallback, bound, slot))

    def for_columns(self, columns: Collection[str]) -> RecordMapper:
        """The same mapping for flat records with these keys and single values (spreadsheet
        rows): what no column provides is settled once instead of looked up in every row."""
        present = set(columns)
        flat = copy.copy(self)
        flat._steps = []
        for key, path, _, fallback, convert, slot in self._steps:
            if path in present:
                flat._steps.append((key, path, None, fallback, convert, slot))
            elif fallback is not _MISSING:
                flat._steps.append((key, None, None, fallback, convert, slot))
        return flat

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        author: dict[str, Any] = {}
        identities: list[dict[str, str]] = []
        problems: list[tuple[str, str]] = []
        get = record.get
        for key, path, parts, fallback, convert, slot in self._steps:
            raw = _MISSING if path is None else get(path, _MISSING)
            if raw is _MISSING and parts is not None and path is not None:
                raw = _lookup(record, path, parts)
            if raw is _MISSING or raw is None or raw == "":
                value = fallback
            elif type(raw) is str and convert is None:
                value = raw.strip() or fallback
            else:
                try:
                    value = convert(raw) if convert else _text(raw)
                except MappingError as error:
                    problems.append((error.field, error.message))
                    continue
                except _NotScalar as error:
                    problems.append((key if slot == _TOP else f"author.{key}", str(error)))
                    continue
                if value == "" or value == []:
                    value = fallback
            if value is _MISSING:
                continue
            if slot == _TOP:
                out[key] = value
            elif slot == _AUTHOR:
                author[key] = value
            else:
                identities.append({"channel": key, "id": value})
        out["author"] = author
        if "external_id" not in out or "text" not in out or "id" not in author:
            failed = {name for name, _ in problems}
            for name in REQUIRED_FIELDS:
                have = author if name == "author.id" else out
                if name not in failed and name.rpartition(".")[2] not in have:
                    problems.append((name, f"missing (looked for {self.paths[name]!r})"))
        if problems:
            raise MappingError(*problems[0], problems=problems, partial=out)
        if identities:
            out["identities"] = identities
        return out


_TOP, _AUTHOR, _IDENTITY = 0, 1, 2

# Per field: (name, path, dotted parts or None, constant or _MISSING, converter or None for
# plain text, where it goes). The constant is whatever its converter made of the config value.
_Step = tuple[str, str | None, tuple[str, ...] | None, Any, Callable[[Any], Any] | None, int]


class _NotScalar(ValueError):
    """A list or an object where one value belongs."""


# --- lookup ----------------------------------------------------------------------------------


def _lookup(node: Any, path: str, parts: Sequence[str]) -> Any:
    """`path` inside `node`: a whole key first (spreadsheet titles may contain dots), then
    dotted steps through mappings and list indices ("items.0.text")."""
    if isinstance(node, Mapping):
        if path in node:
            return node[path]
        # Split after each dot in turn: {"post.author": {"id": 1}} answers "post.author.id".
        for i in range(1, len(parts)):
            head = ".".join(parts[:i])
            if head in node:
                found = _lookup(node[head], ".".join(parts[i:]), parts[i:])
                if found is not _MISSING:
                    return found
        return _MISSING
    if isinstance(node, Sequence) and not isinstance(node, str | bytes):
        try:
            index = int(parts[0])
            item = node[index]
        except (ValueError, IndexError):
            return _MISSING
        return item if len(parts) == 1 else _lookup(item, ".".join(parts[1:]), parts[1:])
    return _MISSING


# --- conversions -----------------------------------------------------------------------------


class _Context:
    __slots__ = ("date_format", "sentiments", "tz")

    def __init__(self, mapping: SourceMapping | None, tz: tzinfo) -> None:
        self.tz = tz
        self.date_format = mapping.date_format if mapping else None
        words = mapping.sentiment_values if mapping else {}
        self.sentiments = {_fold(word): value for word, value in words.items()}


def _bind(convert: Callable[[Any, _Context], Any], context: _Context) -> Callable[[Any], Any]:
    return lambda value: convert(value, context)


def _text(value: Any, context: _Context | None = None) -> str:
    """Spreadsheets hand over ids as numbers: 12345.0 is the id "12345"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        raise _NotScalar(
            f"expected one value, got {'an object' if isinstance(value, Mapping) else 'a list'}"
        )
    return str(value).strip()


def _fold(value: Any) -> str:
    return _text(value).casefold()


def _sentiment(value: Any, context: _Context) -> str:
    word = _fold(value)
    found = context.sentiments.get(word)
    if found is not None:
        return found
    if word in SENTIMENTS:
        return word
    known = sorted({*context.sentiments, *SENTIMENTS})
    raise MappingError("sentiment", f"unknown value {_text(value)!r} (known: {', '.join(known)})")


def _published_at(value: Any, context: _Context) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= _MS_EPOCH else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise MappingError("published_at", f"{value!r} is not a Unix time") from None
    else:
        text = _text(value)
        try:
            if context.date_format:
                moment = datetime.strptime(text, context.date_format)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            expected = context.date_format or "ISO 8601, e.g. 2024-05-01T14:30:00+03:00"
            raise MappingError("published_at", f"{text!r} is not a date ({expected})") from None
    return moment.replace(tzinfo=context.tz) if moment.tzinfo is None else moment


def _whole_number(value: Any, context: _Context) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = _SPACES.sub("", value)
        if digits.isdigit():
            return int(digits)
    return value  # MentionIn says what is wrong with it


def _score(value: Any, context: _Context) -> Any:
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))  # "0,75" from a Russian Excel
        except ValueError:
            return value
    return value


def _codes(value: Any, context: _Context) -> list[str]:
    items = (
        value
        if isinstance(value, list | tuple)
        else _CODE_SPLIT.split(value)
        if isinstance(value, str)
        else [value]
    )
    texts = (_text(item) for item in items if item is not None)
    return list(dict.fromkeys(t for t in texts if t))


def _email(value: Any, context: _Context) -> str:
    address = _text(value).lower()
    if len(address) > 254 or not _EMAIL.match(address):
        raise MappingError("author.email", f"{_text(value)!r} is not an e-mail address")
    return address


def _phone(value: Any, context: _Context) -> str:
    text = _text(value)
    digits = re.sub(r"\D", "", text)
    if not _PHONE_CHARS.match(text) or not 7 <= len(digits) <= 15:
        raise MappingError("author.phone", f"{text!r} is not a phone number")
    if len(digits) == 11 and digits.startswith("8") and not text.startswith("+"):
        digits = "7" + digits[1:]  # 8 912 … is how Russian numbers are dialled at home: +7 912 …
    return "+" + digits


_CONVERTERS: dict[str, Callable[[Any, _Context], Any]] = {
    "sentiment": _sentiment,
    "published_at": _published_at,
    "reach": _whole_number,
    "sentiment_score": _score,
    "codes": _codes,
    "author.email": _email,
    "author.phone": _phone,
}
