"""One error type for every settings file, and pydantic's errors turned into its problems.

Config, playbook and lexicon report each mistake as `file: field.path: message`, all at
once, so an administrator fixes the files in one pass instead of one restart per typo.
The YAML reader (yamlfile.py) and the shared field types (fields.py) come next.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bot.settings.fields import impossible_date, shown

__all__ = [
    "FieldProblems",
    "Problem",
    "SettingsError",
    "closest",
    "error_path",
    "field_problems",
    "item_label",
    "join_path",
    "name_items",
    "shown",
    "unknown_name",
    "with_input",
]

Problem = tuple[Path, str, str]  # (file, field path, message); an empty path: the whole file


class SettingsError(Exception):
    """Settings that cannot be used. `problems` lists every (file, field path, message)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{file}: {field}: {message}" if field else f"{file}: {message}"
            for file, field, message in self.problems
        )

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(field path, message) pairs, for callers that read a single file."""
        return [(field, message) for _, field, message in self.problems]


class FieldProblems(ValueError):
    """Raised by validators that know exact sub-paths; field_problems unpacks it.

    Paths are relative to the model that raised it (pydantic supplies that model's location).
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))


# --- paths ----------------------------------------------------------------------------------


def join_path(prefix: str, part: str | int) -> str:
    """One more step of a field path: `a.b` + 2 -> `a.b[2]`, `a` + `c` -> `a.c`."""
    if isinstance(part, int):
        return f"{prefix}[{part}]"
    if len(part) > 40:  # a key of 3000 characters is a mistake, and unreadable
        part = f"{part[:36]}…"
    if not prefix:
        return part
    if not part:
        return prefix
    return f"{prefix}{part}" if part.startswith("[") else f"{prefix}.{part}"


def error_path(loc: Iterable[str | int]) -> str:
    """pydantic's location as it reads in the file: ("rules", 2, "match") -> rules[2].match."""
    path = ""
    for part in loc:
        path = join_path(path, part)
    return path


_ITEM_RE = re.compile(r"^(?P<key>\w+)\[(?P<index>\d+)\]")


def item_label(noun: str, key: str, index: int, item_id: str) -> str:
    """`rule "school-heating" (rules[9])`: the id an administrator searches the file for,
    and the index for when ids repeat."""
    return f'{noun} "{item_id[:40]}" ({key}[{index}])'


def name_items(path: str, data: object, nouns: dict[str, str]) -> str:
    """`rules[9].match` -> `rule "school-heating" (rules[9]).match`, from the file's data;
    the path unchanged when the item has no usable id. `nouns`: list key -> item noun."""
    match = _ITEM_RE.match(path)
    if match is None or match["key"] not in nouns or not isinstance(data, dict):
        return path
    items, index = data.get(match["key"]), int(match["index"])
    if not isinstance(items, list) or index >= len(items) or not isinstance(items[index], dict):
        return path
    item_id = items[index].get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        return path
    label = item_label(nouns[match["key"]], match["key"], index, item_id.strip())
    return label + path[match.end() :]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is most likely a typo of, if any."""
    found = difflib.get_close_matches(name, list(known), n=1)
    return found[0] if found else None


def unknown_name(
    kind: str, name: str, known: Iterable[str], *, listed_as: str | None = "defined"
) -> str:
    """`unknown calendar 'workin' (did you mean 'working'?)`; without a likely typo, the
    known names are listed after `listed_as` (None: not listed)."""
    names = sorted(known)
    message = f"unknown {kind} {name!r}"
    close = closest(name, names)
    if close is not None:
        return f"{message} (did you mean {close!r}?)"
    if listed_as is not None and names:
        return f"{message} ({listed_as}: {', '.join(names)})"
    return message


def with_input(message: str, value: object) -> str:
    """The message with the offending value, when it is short and not already shown."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return message
    text = shown(value)
    if text in message or (isinstance(value, str) and value.strip() and value.strip() in message):
        return message
    return f"{message} (got {text})"


# --- pydantic -------------------------------------------------------------------------------


def field_problems(
    error: ValidationError,
    model: type[BaseModel] | None = None,
    *,
    echo_input: bool = False,
    list_allowed: bool = False,
) -> list[tuple[str, str]]:
    """(field path, message) for every error, in the words an administrator reads.

    `model`, the validated class, lets an unknown key be answered with the keys it accepts.
    `echo_input` adds the offending value to our validators' messages (type errors always
    show it); `list_allowed` names the unknown key and lists every allowed one (playbook
    files are edited by people who did not write them).
    """
    items = error.errors(include_url=False)
    failed_inside = {
        error_path(item["loc"][:n]) for item in items for n in range(1, len(item["loc"]))
    }
    problems: list[tuple[str, str]] = []
    union_kinds: dict[str, tuple[list[str], object]] = {}
    for item in items:
        loc = tuple(item["loc"])
        # pydantic reports a list "too short" after dropping an item that failed: that item's
        # own error says it all.
        if item["type"] == "too_short" and error_path(loc) in failed_inside:
            continue
        # A value of `str | int | float | bool` fails once per member: one message for all.
        if loc and loc[-1] in _UNION_MEMBERS and item["type"].endswith(("_type", "_parsing")):
            path = error_path(loc[:-1])
            kinds, _ = union_kinds.setdefault(path, ([], item.get("input")))
            kinds.append(_UNION_MEMBERS[str(loc[-1])])
            if len(kinds) == 1:
                problems.append((path, ""))
            continue
        problems += _convert(item, model, echo_input=echo_input, list_allowed=list_allowed)
    return [
        (path, message or _expected(" or ".join(union_kinds[path][0]), union_kinds[path][1]))
        for path, message in problems
    ]


_UNION_MEMBERS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false"}


def _expected(what: str, value: object) -> str:
    return f"expected {what}, got {shown(value)}"


_EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "bytes": "text",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "frozen_set": "a list",
    "iterable": "a list",
    "dict": "a mapping (key: value lines)",
    "mapping": "a mapping (key: value lines)",
    "model": "a mapping (key: value lines)",
    "model_attributes": "a mapping (key: value lines)",
    "time": "a time like '09:00'",
    "date": "a date like 2026-01-01",
    "datetime": "a date and time like '2026-12-30 09:00'",
    "timedelta": "a duration like '45m'",
    "path": "a file path",
    "finite_number": "a finite number",
    "none_required": "nothing (null)",
}
_KIND_RE = re.compile(
    r"^(?:(?P<kind>int|float|bool|string|bytes|list|tuple|set|frozen_set|iterable|dict|"
    r"mapping|model_attributes|model|time|datetime|date|timedelta|path)_"
    r"(?:type|parsing|parsing_size|from_float|from_date_parsing|from_datetime_parsing|"
    r"from_datetime_inexact|past|future|aware|naive|delta|unicode)"
    r"|(?P<whole>finite_number|none_required))$"
)
_BOUNDS = {
    "greater_than": ("gt", "must be greater than {}"),
    "greater_than_equal": ("ge", "must be at least {}"),
    "less_than": ("lt", "must be less than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "multiple_of": ("multiple_of", "must be a multiple of {}"),
}


def _plain(item: Any) -> str | None:
    """pydantic's built-in error in a short English sentence with the value shown; None for
    errors raised by our own validators (their text is already plain)."""
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    match = _KIND_RE.match(kind)
    if match is not None:
        message = _expected(_EXPECTED[match.group("kind") or match.group("whole")], value)
        if isinstance(value, str) and match.group("kind") in ("date", "datetime"):
            message = impossible_date(value) or message
        return message
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        return f"{text.format(ctx.get(key))}, got {shown(value)}"
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{shown(value)} is not allowed; " + _one_of(value, allowed)
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must be at least {least} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long (got {len(value)})"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    if kind == "too_long":
        return f"may have at most {ctx.get('max_length')} items (got {ctx.get('actual_length')})"
    if kind == "recursion_loop":
        return "refers to itself"
    if kind in ("value_error", "assertion_error"):
        return None
    # Anything else: pydantic's words, minus "Input should be".
    message = str(item["msg"]).replace("Input should be", "expected")
    return f"{message[:1].lower()}{message[1:]}, got {shown(value)}"


def _one_of(value: object, allowed: list[str]) -> str:
    close = closest(value, allowed) if isinstance(value, str) else None
    hint = f" (did you mean {close!r}?)" if close is not None else ""
    return f"expected one of {', '.join(allowed)}{hint}"


def _convert(
    item: Any, model: type[BaseModel] | None, *, echo_input: bool, list_allowed: bool
) -> list[tuple[str, str]]:
    loc: tuple[str | int, ...] = tuple(item["loc"])
    cause = (item.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblems):
        path = error_path(loc)
        return [(join_path(path, sub), message) for sub, message in cause.problems]
    if item["type"] == "extra_forbidden":
        return [(error_path(loc), _unknown_key(model, loc, list_allowed))]
    if loc and loc[-1] == "[key]":  # a dict key that failed its own type
        return [(error_path(loc[:-1]), f"invalid key: {_plain(item) or cause}")]
    if item["type"] == "missing":
        return [(error_path(loc), "missing required key")]
    plain = _plain(item)
    if plain is not None:
        return [(error_path(loc), plain)]
    # Our validators' own ValueError text, without pydantic's prefix.
    message = str(cause) if isinstance(cause, Exception) else str(item["msg"])
    message = message.removeprefix("Assertion failed, ")
    if echo_input:
        message = with_input(message, item.get("input"))
    return [(error_path(loc), message)]


def _unknown_key(model: type[BaseModel] | None, loc: tuple[str | int, ...], named: bool) -> str:
    key = str(loc[-1])
    message = f"unknown key {shown(key)}" if named else "unknown key"
    inner = _model_at(model, loc[:-1]) if model is not None else None
    if inner is None:
        return message
    allowed = list(inner.model_fields)
    close = closest(key, allowed)
    if close is not None:
        message += f" (did you mean {close!r}?)"
    if named:
        return f"{message}; allowed: {', '.join(allowed)}"
    return message if close is not None else f"{message} (known keys: {', '.join(allowed)})"


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and `X | None` down to the type that holds the keys."""
    while True:
        args = get_args(annotation)
        if get_origin(annotation) is Annotated:
            annotation = args[0]
        elif args and type(None) in args and len(args) == 2:
            annotation = next(a for a in args if a is not type(None))
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class an error location points into, to list the keys it accepts."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif origin in (tuple, list, frozenset, set):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
