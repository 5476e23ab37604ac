"""Reply templates from the playbook, rendered for one case; and where a reply can be posted."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from bot.model import Author, Case, Mention
from bot.settings.playbook import Playbook
from bot.settings.reply_templates import ReplyTemplate, TemplateKind, TemplateUse
from bot.staff.directory import Directory

# Mentions from the organisation's own Telegram discussion groups carry this source prefix and
# "<chat id>:<message id>" as external id, so the bot can answer under the comment itself.
TELEGRAM_COMMENT_SOURCE = "telegram"
# Letters read from the organisation's mailbox (handlers/email). Answers to them, and to
# web-form appeals ("form") whose author left an e-mail address, go out by e-mail.
EMAIL_SOURCE = "email"
# Appeals sent through the web form (handlers/form). The mention's external id is the
# reference number the citizen was shown; an e-mail contact is its author ("email", address).
FORM_SOURCE = "form"
EMAIL_IDENTITY = "email"  # Identity.channel of an e-mail address; external_id is the address
EMAIL_TRANSPORT = "email"
# Every answer by e-mail queues in this one outbox "chat": the address is personal data and
# stays in the mention's sealed record, where the transport reads it (by the mention's id).
EMAIL_CHAT = "letters"
# Private messages to the bot: "<user id>:<message id>" as external id. A private chat's id is
# the user's id, so the answer goes back into the same chat, as a reply to the message.
TELEGRAM_DM_SOURCE = "telegram_dm"


def telegram_comment_id(chat_id: int, message_id: int) -> str:
    return f"{chat_id}:{message_id}"


# The VK community page (handlers/vk). Only the VK adapter stores mentions under "vk:" names
# (bot/settings/connections.py reserves the prefix), so their external ids may name where the
# answer goes: a wall comment "<owner>_<post>:<comment>[:edit:…]", a message "<peer>:<id>".
VK_TRANSPORT = "vk"
VK_WALL_SOURCE = "vk:wall"
VK_MESSAGE_SOURCE = "vk:message"
VK_WALL_CHAT = "wall"  # outbox chat "wall<owner>_<post>": wall.createComment under the post
VK_PEER_CHAT = "peer"  # outbox chat "peer<peer id>": messages.send to the citizen


def vk_wall_comment_id(owner_id: int, post_id: int, comment_id: int) -> str:
    return f"{owner_id}_{post_id}:{comment_id}"


def vk_message_id(peer_id: int, message_id: int) -> str:
    return f"{peer_id}:{message_id}"


def _is_int(text: str, negative: bool = False) -> bool:
    digits = text[1:] if negative and text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and len(digits) <= 19


def _vk_origin(mention: Mention) -> Origin | None:
    """A wall comment is answered under itself, a message to the community by a message."""
    parts = mention.external_id.split(":")
    if mention.source == VK_WALL_SOURCE and len(parts) >= 2:
        owner, _, post = parts[0].partition("_")
        if _is_int(owner, negative=True) and _is_int(post) and _is_int(parts[1]):
            return Origin(VK_TRANSPORT, f"{VK_WALL_CHAT}{owner}_{post}", parts[1])
    if (
        mention.source == VK_MESSAGE_SOURCE
        and len(parts) == 2
        and _is_int(parts[0])
        and _is_int(parts[1])
    ):
        return Origin(VK_TRANSPORT, f"{VK_PEER_CHAT}{parts[0]}", parts[1])
    return None


@dataclass(frozen=True, slots=True)
class Origin:
    """A place where the bot itself can post the approved answer."""

    transport: str
    chat: str
    message_id: str


def origin_of(mention: Mention, discussion_chats: Collection[str]) -> Origin | None:
    """Where the answer to `mention` can be posted: under the comment itself, if it is one
    in a configured discussion group or on the VK community's wall; to the citizen, if they
    wrote to the VK community (_vk_origin). The external id is data: a mention stored under the
    source name by anyone but the Telegram adapter (an API source called "telegram" before
    such names were refused) must not choose the chat the bot posts into."""
    if mention.source.startswith("vk:"):
        return _vk_origin(mention)
    if mention.source in (EMAIL_SOURCE, FORM_SOURCE):
        return _email_origin(mention)
    if mention.source == TELEGRAM_DM_SOURCE:
        return _private_chat_origin(mention)
    if mention.source != TELEGRAM_COMMENT_SOURCE:
        return None
    chat, _, message_id = mention.external_id.partition(":")
    if not (chat.lstrip("-").isdigit() and message_id.isdigit()):
        return None
    if chat not in discussion_chats:
        return None
    return Origin("telegram", chat, message_id)


def _email_origin(mention: Mention) -> Origin | None:
    """A letter (answered as a reply to it), or a form appeal that left an e-mail address
    (answered by a new letter). The message id is the stored mention's id, never a header:
    only "email" mentions come from the mailbox reader (the name is reserved for it)."""
    if mention.id is None:
        return None
    if mention.source == FORM_SOURCE and mention.author.channel != EMAIL_IDENTITY:
        return None
    return Origin(EMAIL_TRANSPORT, EMAIL_CHAT, str(mention.id))


def _private_chat_origin(mention: Mention) -> Origin | None:
    """A private message is answered in its own chat. The source name is reserved for the
    Telegram adapter (bot/settings/connections.py RESERVED_SOURCE_NAMES), and a private chat
    has a positive id: a group's negative one here would be a forged or broken record."""
    user, _, message_id = mention.external_id.partition(":")
    if not (user.isascii() and user.isdigit() and message_id.isascii() and message_id.isdigit()):
        return None
    if int(user) <= 0:
        return None
    return Origin("telegram", user, message_id)


@dataclass(frozen=True, slots=True)
class RenderedReply:
    template_id: str
    text: str
    pre_approved: bool
    follow_up_after: timedelta | None


@dataclass(frozen=True, slots=True)
class TemplateOffer:
    """A template of the first-reply menu, rendered for one case."""

    template_id: str
    title: str
    text: str
    skips_review: bool  # goes out with no second person (ReplyCatalog.skips_review)


class ReplyCatalog:
    def __init__(
        self, playbook: Playbook, locale: str, organisation: str, directory: Directory
    ) -> None:
        self._playbook = playbook
        self._locale = locale
        self._organisation = organisation
        self._directory = directory

    def _offered(self, department: str, use: TemplateUse) -> list[ReplyTemplate]:
        return [t for t in self._playbook.templates_for(department) if t.used_as is use]

    def options(self, department: str) -> list[tuple[str, str]]:
        """(template id, title) of the first-reply menu in a department: apologies and
        refutations are not there, they start an answer (answer_starts)."""
        return [
            (t.id, t.title.get(self._locale))
            for t in self._offered(department, TemplateUse.FIRST_TOUCH)
        ]

    def skips_review(self, template: ReplyTemplate, case: Case) -> bool:
        """May this template go out for this case with no second person, i.e. be published
        at once where the bot can publish (bot/cases/service.py)? The one place to ask: the
        template must be pre_approved, and the approval policy (approval.yaml) must let a
        template skip the tiers for this case's department, priority and codes."""
        chain = self._playbook.approval_chain(case.department, case.priority, case.codes)
        return template.pre_approved and chain.template_skips

    def offers(self, case: Case, mention: Mention, author: Author | None) -> list[TemplateOffer]:
        """The first-reply menu of a case: each template with its text for this author."""
        if case.id is None:
            return []
        return [
            TemplateOffer(
                t.id,
                t.title.get(self._locale),
                self._text(t, case, mention.author.display_name, author, mention.url),
                self.skips_review(t, case),
            )
            for t in self._offered(case.department, TemplateUse.FIRST_TOUCH)
        ]

    def render(
        self, template_id: str, case: Case, mention: Mention, author: Author | None
    ) -> RenderedReply | None:
        """A first-reply menu template for a case; None if the menu does not offer it."""
        offered = {t.id: t for t in self._offered(case.department, TemplateUse.FIRST_TOUCH)}
        template = offered.get(template_id)
        if template is None or case.id is None:
            return None
        text = self._text(template, case, mention.author.display_name, author, mention.url)
        skips = self.skips_review(template, case)
        return RenderedReply(template.id, text, skips, template.follow_up_after)

    def answer_starts(
        self,
        case: Case,
        mention: Mention,
        author: Author | None,
        kinds: Collection[TemplateKind] | None = None,
    ) -> list[tuple[str, str]]:
        """(title, text) of the templates an answer may start from (apology, refutation):
        the draft prompt shows them to copy and complete. `kinds`: only these (a follow-up
        starts from the follow-up templates)."""
        if case.id is None:
            return []
        return [
            (
                t.title.get(self._locale),
                self._text(t, case, mention.author.display_name, author, mention.url),
            )
            for t in self._offered(case.department, TemplateUse.ANSWER)
            if kinds is None or t.kind in kinds
        ]

    def _text(
        self,
        template: ReplyTemplate,
        case: Case,
        mention_name: str,
        author: Author | None,
        url: str | None,
    ) -> str:
        assert case.id is not None
        return template.render(
            self._locale,
            author_name=(author.display_name if author else "") or mention_name,
            department_name=self._directory.department_name(case.department),
            case_id=case.id,
            org_name=self._organisation,
            mention_url=url,
        )

    def follow_up_after(self, template_id: str | None) -> timedelta | None:
        if template_id is None:
            return None
        try:
            return self._playbook.template(template_id).follow_up_after
        except KeyError:
            return None
