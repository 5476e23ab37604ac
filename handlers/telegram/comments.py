"""Citizens in Telegram: comments under the channel's posts (in its linked discussion group)
and, when enabled, private messages to the bot become mentions. Staff messages, bots and the
channel's own automatic forwards are not mentions: they are the organisation speaking."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, Message, User

from bot.cases.grouping import IntakeResult
from bot.cases.replies import TELEGRAM_COMMENT_SOURCE, TELEGRAM_DM_SOURCE, telegram_comment_id
from bot.messages.views import notice_view
from bot.model import (
    MAX_MIME,
    MAX_NAME,
    TELEGRAM_FILE,
    Attachment,
    AttachmentKind,
    Identity,
    Mention,
    bounded_attachments,
)
from bot.settings.connections import DiscussionGroup
from handlers.telegram.context import TRANSPORT, TelegramContext, where

log = logging.getLogger(__name__)

DM_SOURCE = TELEGRAM_DM_SOURCE
_SUPERGROUP_PREFIX = "-100"  # t.me/c/ links use a supergroup's id without it
_ADMINS = frozenset({"creator", "administrator"})
_GONE = frozenset({"left", "kicked"})


def message_link(chat: Chat, message_id: int, thread_id: int | None = None) -> str | None:
    """A t.me link to a message; None where Telegram has none (basic groups, private chats)."""
    if chat.username:
        base = f"https://t.me/{chat.username}"
    elif chat.type == "supergroup" and str(chat.id).startswith(_SUPERGROUP_PREFIX):
        base = f"https://t.me/c/{str(chat.id)[len(_SUPERGROUP_PREFIX) :]}"
    else:
        return None
    link = f"{base}/{message_id}"
    # ?thread= opens the comment inside its discussion thread rather than the group's feed.
    return f"{link}?thread={thread_id}" if thread_id and thread_id != message_id else link


def _thread_root(message: Message) -> int | None:
    """The message a comment sits under: the post's automatic forward starts the thread."""
    if message.message_thread_id:
        return message.message_thread_id
    reply = message.reply_to_message
    return reply.message_id if reply is not None else None


def _author(user: User) -> Identity:
    return Identity(
        TRANSPORT,
        str(user.id),
        user.full_name[:MAX_NAME],
        f"https://t.me/{user.username}" if user.username else None,
    )


def _text(message: Message) -> str:
    return (message.text or message.caption or "").strip()


def _carries_file(message: Message) -> bool:
    return bool(
        message.photo or message.document or message.video or message.audio or message.voice
    )


def attachments(message: Message, max_photo_bytes: int) -> tuple[Attachment, ...]:
    """What came with the message, by file id (nothing is downloaded). A photo is the
    largest of its sizes within `max_photo_bytes` (Telegram sends each picture in several
    sizes, smallest first), else the smallest. The caption is the mention's text."""
    found: list[Attachment] = []
    if message.photo:
        sizes = sorted(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        fitting = [p for p in sizes if (p.file_size or 0) <= max_photo_bytes]
        photo = (fitting or sizes)[-1 if fitting else 0]
        found.append(
            Attachment(
                AttachmentKind.PHOTO,
                f"{TELEGRAM_FILE}{photo.file_id}",
                mime="image/jpeg",  # Telegram re-encodes every photo as JPEG
                size=photo.file_size,
            )
        )
    files = (
        (AttachmentKind.DOCUMENT, message.document),
        (AttachmentKind.VIDEO, message.video),
        (AttachmentKind.AUDIO, message.audio),
    )
    for kind, file in files:
        if file is not None:
            found.append(
                Attachment(
                    kind,
                    f"{TELEGRAM_FILE}{file.file_id}",
                    name=(file.file_name or "")[:MAX_NAME],
                    mime=(file.mime_type or "")[:MAX_MIME],
                    size=file.file_size,
                )
            )
    if message.voice is not None:
        voice = message.voice
        found.append(
            Attachment(
                AttachmentKind.AUDIO,
                f"{TELEGRAM_FILE}{voice.file_id}",
                mime=(voice.mime_type or "")[:MAX_MIME],
                size=voice.file_size,
            )
        )
    return bounded_attachments(found)


def _citizen(message: Message, ctx: TelegramContext) -> User | None:
    """The sender when the message is a citizen's words worth taking in, else None."""
    user = message.from_user
    if ctx.intake is None or user is None or user.is_bot or message.sender_chat is not None:
        return None  # sender_chat: an anonymous admin or a channel speaking, not a person
    text = _text(message)
    if text.startswith("/") or not (text or _carries_file(message)):
        return None  # stickers, service messages, commands
    if ctx.directory.by_telegram(user.id).is_staff:
        return None  # staff answering is the organisation, not a mention
    return user


async def _take_in(ctx: TelegramContext, mention: Mention) -> IntakeResult:
    # The single entry of Telegram mentions into the core. They arrive neutral: the sentiment
    # classifier, once it lands, sets sentiment here (or inside intake) before routing.
    assert ctx.intake is not None
    result = await ctx.intake.receive(mention)
    log.info(
        "telegram: %s %s taken in%s",
        mention.source,
        mention.external_id,
        f", case #{result.case.id}" if result.case is not None else "",
    )
    return result


async def on_comment(message: Message, ctx: TelegramContext) -> None:
    user = message.from_user
    assert user is not None
    thread = _thread_root(message)
    await _take_in(
        ctx,
        Mention(
            source=TELEGRAM_COMMENT_SOURCE,
            external_id=telegram_comment_id(message.chat.id, message.message_id),
            text=_text(message),
            author=_author(user),
            received_at=ctx.clock.now(),
            published_at=message.date,
            url=message_link(message.chat, message.message_id, thread),
            reply_to_url=message_link(message.chat, thread) if thread else None,
            attachments=attachments(message, ctx.directory.attachment_forward_bytes),
        ),
    )


async def on_direct(message: Message, ctx: TelegramContext) -> None:
    user = message.from_user
    assert user is not None
    await _take_in(
        ctx,
        Mention(
            source=DM_SOURCE,
            external_id=f"{user.id}:{message.message_id}",
            text=_text(message),
            author=_author(user),
            received_at=ctx.clock.now(),
            published_at=message.date,
            attachments=attachments(message, ctx.directory.attachment_forward_bytes),
        ),
    )
    # Acknowledged even for a re-delivered update: the outbox key sends it only once.
    await ctx.cases.send(
        where(message),
        notice_view("ui.dm_received"),
        key=f"dm:{message.message_id}",
        reply_to_message=str(message.message_id),
    )


def make_router(discussion_groups: Iterable[int] = (), direct_messages: bool = False) -> Router:
    """A fresh router. Its filters decide everything, so messages that are not citizens'
    (staff replies to cards, commands) fall through to the routers after it."""
    router = Router(name=__name__)
    groups = frozenset(discussion_groups)

    async def is_comment(message: Message, ctx: TelegramContext) -> bool:
        return (
            message.chat.id in groups
            and not message.is_automatic_forward  # the channel post itself
            and _citizen(message, ctx) is not None
        )

    async def is_direct(message: Message, ctx: TelegramContext) -> bool:
        return message.chat.type == "private" and _citizen(message, ctx) is not None

    if groups:
        router.message.register(on_comment, is_comment)
    if direct_messages:
        router.message.register(on_direct, is_direct)
    return router


async def check_discussion_groups(
    bot: Bot, me: User, groups: Sequence[DiscussionGroup]
) -> list[str]:
    """Warn about discussion groups whose comments the bot cannot see (`me` from getMe).
    Never raises: a misconfigured group must not stop the rest of Otklik."""
    can_read_all = bool(me.can_read_all_group_messages)
    warnings: list[str] = []
    for group in groups:
        where_ = f"discussion group «{group.name}» ({group.chat_id})"
        try:
            member = await bot.get_chat_member(group.chat_id, me.id)
        except TelegramAPIError as error:
            warnings.append(
                f"telegram: cannot check {where_}: {error}. Add the bot to the group as an "
                "administrator and check telegram.discussion_groups[].chat_id"
            )
            continue
        if member.status in _GONE or (
            member.status == "restricted" and not getattr(member, "is_member", True)
        ):
            warnings.append(
                f"telegram: the bot is not a member of {where_}: comments there will not "
                "become mentions. Add the bot to the group as an administrator"
            )
        elif member.status not in _ADMINS and not can_read_all:
            warnings.append(
                f"telegram: privacy mode is on and the bot is a plain member of {where_}, so "
                "it does not see comments there: make the bot an administrator of the group "
                "or turn privacy mode off with @BotFather /setprivacy (then re-add the bot)"
            )
    for warning in warnings:
        log.warning(warning)
    return warnings
