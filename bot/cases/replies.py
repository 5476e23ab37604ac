"""Reply templates from the playbook, rendered for one case; and where a reply can be posted."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from bot.model import Author, Case, Mention
from bot.settings.playbook import Playbook
from bot.staff.directory import Directory

# Mentions from the organisation's own Telegram discussion groups carry this source prefix and
# "<chat id>:<message id>" as external id, so the bot can answer under the comment itself.
TELEGRAM_COMMENT_SOURCE = "telegram"


def telegram_comment_id(chat_id: int, message_id: int) -> str:
    return f"{chat_id}:{message_id}"


@dataclass(frozen=True, slots=True)
class Origin:
    """A place where the bot itself can post the approved answer."""

    transport: str
    chat: str
    message_id: str


def origin_of(mention: Mention, discussion_chats: Collection[str]) -> Origin | None:
    """Where the answer to `mention` can be posted: under the comment itself, if it is one
    in a configured discussion group. The external id is data: a mention stored under the
    source name by anyone but the Telegram adapter (an API source called "telegram" before
    such names were refused) must not choose the chat the bot posts into."""
    if mention.source != TELEGRAM_COMMENT_SOURCE:
        return None
    chat, _, message_id = mention.external_id.partition(":")
    if not (chat.lstrip("-").isdigit() and message_id.isdigit()):
        return None
    if chat not in discussion_chats:
        return None
    return Origin("telegram", chat, message_id)


@dataclass(frozen=True, slots=True)
class RenderedReply:
    template_id: str
    text: str
    pre_approved: bool
    follow_up_after: timedelta | None


class ReplyCatalog:
    def __init__(
        self, playbook: Playbook, locale: str, organisation: str, directory: Directory
    ) -> None:
        self._playbook = playbook
        self._locale = locale
        self._organisation = organisation
        self._directory = directory

    def options(self, department: str) -> list[tuple[str, str]]:
        """(template id, title) of the templates offered in a department."""
        return [(t.id, t.title.get(self._locale)) for t in self._playbook.templates_for(department)]

    def render(
        self, template_id: str, case: Case, mention: Mention, author: Author | None
    ) -> RenderedReply | None:
        offered = {t.id: t for t in self._playbook.templates_for(case.department)}
        template = offered.get(template_id)
        if template is None or case.id is None:
            return None
        text = template.render(
            self._locale,
            author_name=(author.display_name if author else "") or mention.author.display_name,
            department_name=self._directory.department_name(case.department),
            case_id=case.id,
            org_name=self._organisation,
            mention_url=mention.url,
        )
        return RenderedReply(template.id, text, template.pre_approved, template.follow_up_after)

    def follow_up_after(self, template_id: str | None) -> timedelta | None:
        if template_id is None:
            return None
        try:
            return self._playbook.template(template_id).follow_up_after
        except KeyError:
            return None
