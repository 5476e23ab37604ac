"""templates.yaml: the replies a specialist can start from, Jinja2 in a sandbox.

playbook.py loads the file and checks every template's variables against REPLY_VARIABLES.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from bot.settings.fields import Id, OneOrMoreLocales, PositiveDuration, StrictModel

__all__ = [
    "CITIZEN_VARIABLES",
    "REPLY_ENV",
    "REPLY_VARIABLES",
    "ReplyTemplate",
    "TemplateKind",
    "TemplateUse",
    "TemplatesConfig",
]

# Variables a reply template may use; all are plain text, replies are not HTML.
REPLY_VARIABLES: dict[str, str] = {
    "author_name": "the author's display name, may be empty",
    "department_name": "the owning department's name from the config",
    "case_id": "the case number",
    "org_name": "the organisation's name from the config",
    "mention_url": "link to the mention, may be none",
}
# What the citizen (or whoever sent the mention) chose, not the organisation: a pre-approved
# template is published with no second person reading it, so it may not quote these. A name
# of up to 256 characters is a whole sentence put into the organisation's mouth.
CITIZEN_VARIABLES = frozenset({"author_name", "mention_url"})


class TemplateKind(StrEnum):
    FIRST_TOUCH = "first_touch"  # calm the thread, ask for details in private
    MOVE_TO_PRIVATE = "move_to_private"  # "we wrote to you in private"
    FOLLOW_UP = "follow_up"  # come back to the thread: "was the problem solved?"
    REFUTATION = "refutation"
    APOLOGY = "apology"
    HOLDING_STATEMENT = "holding_statement"  # the first word in a crisis
    THANKS = "thanks"


class TemplateUse(StrEnum):
    """Where a card offers a template."""

    FIRST_TOUCH = "first_touch"  # the «First reply ▸» menu: a quick public word, sent as is
    ANSWER = "answer"  # a starting text for the answer: the draft prompt shows it to adapt


# Apologies and refutations say what went wrong and what is true: they are written for the
# case, so they start an answer rather than sit in the first-reply menu.
ANSWER_KINDS = frozenset({TemplateKind.REFUTATION, TemplateKind.APOLOGY})


class ReplyTemplate(StrictModel):
    """A reply a specialist can start from. `text` is Jinja2 over REPLY_VARIABLES."""

    id: Id
    kind: TemplateKind
    use: TemplateUse | None = None  # None: by kind (ANSWER_KINDS start an answer)
    # May be published without a second pair of eyes; then it may not use CITIZEN_VARIABLES.
    pre_approved: bool = False
    departments: tuple[Id, ...] = ()  # empty: every department
    # Only the configured locale's text is needed (Playbook.check_locale).
    title: OneOrMoreLocales  # the button / picker label
    text: OneOrMoreLocales
    follow_up_after: PositiveDuration | None = None  # when the bot asks to show the result

    @property
    def used_as(self) -> TemplateUse:
        if self.use is not None:
            return self.use
        return TemplateUse.ANSWER if self.kind in ANSWER_KINDS else TemplateUse.FIRST_TOUCH

    def render(
        self,
        locale: str,
        *,
        author_name: str,
        department_name: str,
        case_id: int,
        org_name: str,
        mention_url: str | None = None,
    ) -> str:
        """The reply text, plain (social networks get no HTML)."""
        return (
            _compile_reply(self.text.get(locale))
            .render(
                author_name=author_name,
                department_name=department_name,
                case_id=case_id,
                org_name=org_name,
                mention_url=mention_url,
            )
            .strip()
        )


class TemplatesConfig(StrictModel):
    templates: tuple[ReplyTemplate, ...] = Field(min_length=1)
    # Closes every answer sent by e-mail (handlers/email): plain text, no template variables.
    signature: OneOrMoreLocales | None = None


# Administrators write these templates: sandboxed, and strict about unknown variables.
REPLY_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
)


@lru_cache(maxsize=512)
def _compile_reply(source: str) -> Template:
    # from_string compiles anew on every call; a template is rendered for every case.
    return REPLY_ENV.from_string(source)
