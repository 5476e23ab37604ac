"""Coding a case from the chat: the playbook's dimensions (codes.yaml) as a department sees
them, in the organisation's language, and what toggling a code does to a case's codes.

A chosen code is kept in Case.codes as "<dimension>:<code>"; the plain codes that sources and
routing rules give (no colon) are never touched here. A button carries "<dimension>.<code>"
(a colon cannot go into Telegram's callback data fields): `code_of_arg` turns it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages.views import CardCodes
from bot.settings.case_codes import CodeDimension, CodesConfig

SEPARATOR = ":"  # in Case.codes
ARG_SEPARATOR = "."  # in a button's argument


def code_of_arg(arg: str) -> str | None:
    """ "topic.heating" (a menu choice's argument) as "topic:heating"; None when malformed."""
    dimension, dot, code = arg.partition(ARG_SEPARATOR)
    return f"{dimension}{SEPARATOR}{code}" if dot and dimension and code else None


def arg_of_code(code: str) -> str:
    return code.replace(SEPARATOR, ARG_SEPARATOR, 1)


def dimension_of(code: str) -> str | None:
    """The dimension of a chat-set code; None for a source's or a rule's plain code."""
    dimension, colon, _ = code.partition(SEPARATOR)
    return dimension if colon else None


@dataclass(frozen=True, slots=True)
class Toggled:
    codes: tuple[str, ...]  # the case's codes afterwards
    added: bool  # True: the code was set; False: it was removed
    removed: tuple[str, ...]  # codes of a single-choice dimension it replaced


class CodeBook:
    """codes.yaml in one locale."""

    def __init__(self, config: CodesConfig, locale: str) -> None:
        self._dimensions = {d.id: d for d in config.dimensions}
        self.locale = locale

    def __bool__(self) -> bool:
        return bool(self._dimensions)

    def dimensions(self, department: str) -> list[CodeDimension]:
        """The dimensions offered in a department, in file order (only those with a code)."""
        return [
            d
            for d in self._dimensions.values()
            if (not d.departments or department in d.departments) and self.codes(d.id, department)
        ]

    def codes(self, dimension: str, department: str) -> list[tuple[str, str]]:
        """(code as kept on a case, its title) of a dimension, as offered in a department."""
        found = self._dimensions.get(dimension)
        if found is None or (found.departments and department not in found.departments):
            return []
        return [
            (f"{found.id}{SEPARATOR}{c.id}", c.title.get(self.locale))
            for c in found.codes
            if not c.departments or department in c.departments
        ]

    def dimension_title(self, dimension: str) -> str:
        found = self._dimensions.get(dimension)
        return found.title.get(self.locale) if found else dimension

    def title(self, code: str) -> str:
        """ "topic:heating" as "Тема: Отопление"; the code itself when the playbook lost it."""
        dimension = dimension_of(code)
        titles = dict(self._all_codes(dimension)) if dimension else {}
        if code not in titles:
            return code
        return f"{self.dimension_title(dimension or '')}: {titles[code]}"

    def offered(self, code: str, department: str) -> bool:
        dimension = dimension_of(code)
        return dimension is not None and any(
            c == code for c, _ in self.codes(dimension, department)
        )

    def multiple(self, dimension: str) -> bool:
        found = self._dimensions.get(dimension)
        return bool(found and found.multiple)

    def shown(self, codes: tuple[str, ...]) -> list[CardCodes]:
        """A case's chat-set codes per dimension, for its card: [{"dimension", "codes"}] in
        the playbook's order; codes no longer in the playbook are shown by their id."""
        by_dimension: dict[str, list[str]] = {}
        for code in codes:
            dimension = dimension_of(code)
            if dimension is not None:
                by_dimension.setdefault(dimension, []).append(code)
        order = [*self._dimensions, *(d for d in by_dimension if d not in self._dimensions)]
        shown: list[CardCodes] = []
        for dimension in order:
            chosen = by_dimension.get(dimension)
            if not chosen:
                continue
            titles = dict(self._all_codes(dimension))
            shown.append(
                {
                    "dimension": self.dimension_title(dimension),
                    "codes": [titles.get(c, c.partition(SEPARATOR)[2]) for c in chosen],
                }
            )
        return shown

    def _all_codes(self, dimension: str) -> list[tuple[str, str]]:
        found = self._dimensions.get(dimension)
        if found is None:
            return []
        return [(f"{found.id}{SEPARATOR}{c.id}", c.title.get(self.locale)) for c in found.codes]


def toggle(codes: tuple[str, ...], code: str, multiple: bool) -> Toggled:
    """`code` removed when the case has it, else added; in a single-choice dimension adding
    it replaces the dimension's other code."""
    if code in codes:
        return Toggled(tuple(c for c in codes if c != code), added=False, removed=())
    dimension = dimension_of(code)
    removed = () if multiple else tuple(c for c in codes if dimension_of(c) == dimension)
    kept = tuple(c for c in codes if c not in removed)
    return Toggled((*kept, code), added=True, removed=removed)
