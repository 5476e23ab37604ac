"""Reading the YAML that administrators write: strict about duplicate keys, clear about where.

Next: fields.py, the field types the settings models share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.settings.errors import SettingsError

__all__ = [
    "StrictLoader",
    "YamlError",
    "read_text",
    "read_yaml",
    "top_level_problem",
    "yaml_problem",
]

# libyaml's parser where PyYAML was built with it: the lexicons parse faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that rejects duplicate keys: plain YAML silently keeps the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may legitimately be overridden by explicit keys
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it itself
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML lets Python's own errors out of its constructors (`!!int abc`, a number of
        # 5000 digits): turn them into YAML errors that carry the line and column.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            kind = node.tag.rpartition(":")[2]
            kind = _SCALAR_KINDS.get(kind, kind)
            shown = _bounded(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid {kind}", node.start_mark
            ) from exc

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> Any:
        """An unquoted date YAML cannot build (2026-02-30) stays the text it was written as,
        so the field that expects a date says what is wrong with it, and where."""
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, AttributeError):
            return self.construct_scalar(node)


StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", StrictLoader.construct_lenient_timestamp
)


_SCALAR_KINDS = {
    "int": "whole number (at most 4300 digits)",
    "float": "number",
    "bool": "true/false",
}


def _bounded(text: object, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 5]}…{shown[-4:]}"


def _check_acyclic(data: Any) -> None:
    """`&a [*a]` builds a list that holds itself; the settings code would walk it forever."""
    done: set[int] = set()
    path: set[int] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict | list) or id(node) in done:
            return
        if id(node) in path:
            raise ValueError("an alias (*name) refers to a node that contains it")
        path.add(id(node))
        for child in node.values() if isinstance(node, dict) else node:
            walk(child)
        path.discard(id(node))
        done.add(id(node))

    walk(data)


class YamlError(SettingsError):
    """A YAML file that cannot be parsed; `message` carries the line and column."""

    def __init__(self, file: Path, message: str) -> None:
        self.message = message
        super().__init__([(file, "", message)])


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, in the words of the line and column an editor shows."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        message += exc.problem or exc.context or "syntax error"
        start = exc.context_mark
        # Unclosed brackets and quotes are noticed far below where they start; say where.
        if exc.problem and exc.context and start is not None and start.line != mark.line:
            message += f" ({exc.context} started at line {start.line + 1})"
        return message
    if isinstance(exc, yaml.MarkedYAMLError):
        return f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
    return f"invalid YAML: {exc}"


_KINDS = {"list": "a list", "str": "text", "int": "a number", "float": "a number"}


def top_level_problem(data: object) -> str | None:
    """What is wrong with a settings file's parsed content as a whole, if anything."""
    if data is None:
        return "the file is empty; expected a mapping of settings"
    if isinstance(data, dict):
        return None
    kind = "true/false" if isinstance(data, bool) else _KINDS.get(type(data).__name__, "a value")
    return f"the top level must be a mapping of settings, not {kind}"


def read_text(file: Path) -> str:
    """A settings file's text; raises YamlError when it is not UTF-8 (saying where), or
    OSError."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{byte} at line {line}; save the file as UTF-8"
        raise YamlError(file, message) from None


def read_yaml(file: Path, loader: type[StrictLoader] = StrictLoader) -> Any:
    """Read and parse one YAML file; raises YamlError, or OSError."""
    text = read_text(file)
    try:
        data = yaml.load(text, Loader=loader)  # a SafeLoader subclass
        _check_acyclic(data)
    except yaml.YAMLError as exc:
        raise YamlError(file, yaml_problem(exc)) from exc
    except RecursionError:
        raise YamlError(file, "invalid YAML: nested too deeply") from None
    except ValueError as exc:
        raise YamlError(file, f"invalid YAML: {exc}") from None
    return data
