"""Reading the YAML that administrators write: strict about duplicate keys, clear about where.

Next: fields.py, the field types the settings models share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.settings.errors import SettingsError

__all__ = ["StrictLoader", "YamlError", "read_yaml", "yaml_problem"]

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


def read_yaml(file: Path, loader: type[StrictLoader] = StrictLoader) -> Any:
    """Read and parse one YAML file; raises YamlError, or OSError / UnicodeDecodeError."""
    text = file.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise YamlError(file, yaml_problem(exc)) from exc
