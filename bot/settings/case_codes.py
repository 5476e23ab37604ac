"""codes.yaml: the lists staff code cases with from the chat, in several dimensions (topic,
object, district, …). Optional: a playbook without the file offers no «Коды ▸» menu.

A case keeps a chosen code as "<dimension>:<code>" in Case.codes, beside the plain codes
sources and routing rules give (those have no colon and are left alone). Ids are short: a
Telegram button carries "<dimension>.<code>" in its 64 bytes (bot/cases/codes.py).
playbook.py loads the file.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from bot.settings.fields import Id, OneOrMoreLocales, StrictModel

__all__ = ["CODE_ID_MAX", "CaseCode", "CodeDimension", "CodesConfig"]

CODE_ID_MAX = 16  # a dimension's or a code's id: both go into one button's callback data
_SHORT_RE = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{CODE_ID_MAX - 1}}}$")


def _short(value: str) -> str:
    if not _SHORT_RE.match(value):
        raise ValueError(
            f"invalid id {value!r}: use 1-{CODE_ID_MAX} lowercase Latin letters, digits, "
            "'_' or '-' (it goes into a button's data)"
        )
    return value


ShortId = Annotated[str, AfterValidator(_short)]


class CaseCode(StrictModel):
    id: ShortId
    title: OneOrMoreLocales
    departments: tuple[Id, ...] = ()  # empty: offered in every department


class CodeDimension(StrictModel):
    id: ShortId
    title: OneOrMoreLocales
    multiple: bool = False  # several codes of this dimension on one case, or one at most
    departments: tuple[Id, ...] = ()  # empty: offered in every department
    codes: tuple[CaseCode, ...] = Field(min_length=1, max_length=60)

    @model_validator(mode="after")
    def _unique_codes(self) -> CodeDimension:
        seen: set[str] = set()
        for code in self.codes:
            if code.id in seen:
                raise ValueError(f"duplicate code id {code.id!r} in dimension {self.id!r}")
            seen.add(code.id)
        return self


class CodesConfig(StrictModel):
    dimensions: tuple[CodeDimension, ...] = Field(default=(), max_length=12)

    @model_validator(mode="after")
    def _unique_dimensions(self) -> CodesConfig:
        ids = [d.id for d in self.dimensions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate dimension id(s): {', '.join(duplicates)}")
        return self
