"""One error type for every settings file, and pydantic's errors turned into its problems.

Config, playbook and lexicon report each mistake as `file: field.path: message`, all at
once, so an administrator fixes the files in one pass instead of one restart per typo.
The YAML reader (yamlfile.py) and the shared field types (fields.py) come next.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = [
    "FieldProblems",
    "Problem",
    "SettingsError",
    "closest",
    "error_path",
    "field_problems",
    "join_path",
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
    if isinstance(value, str):
        shown = repr(value[:60])
    elif isinstance(value, int | float):
        shown = repr(value)
    else:
        return message
    return message if shown in message else f"{message} (got {shown})"


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
    `echo_input` adds the offending value; `list_allowed` names the unknown key and lists
    every allowed one (playbook files are edited by people who did not write them).
    """
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        problems += _convert(item, model, echo_input=echo_input, list_allowed=list_allowed)
    return problems


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
        return [(error_path(loc[:-1]), f"invalid key: {item['msg']}")]
    if item["type"] == "missing":
        return [(error_path(loc), "missing required key")]
    # Our validators' own ValueError text, without pydantic's prefix.
    message = str(cause) if isinstance(cause, Exception) else str(item["msg"])
    message = message.removeprefix("Assertion failed, ")
    if echo_input:
        message = with_input(message, item.get("input"))
    return [(error_path(loc), message)]


def _unknown_key(model: type[BaseModel] | None, loc: tuple[str | int, ...], named: bool) -> str:
    key = str(loc[-1])
    message = f"unknown key {key!r}" if named else "unknown key"
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
