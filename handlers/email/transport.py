"""Approved answers by e-mail: the outbox Transport for the "email" origin (bot/cases/replies.py).

A letter's answer is a proper reply (In-Reply-To, References, "Re: " subject); a web-form
appeal's answer is a new letter whose subject names the case. The address, subject and
Message-IDs are read from the mention's sealed record at send time, never queued in clear.

Exactly once across restarts, as far as mail allows. The Message-ID is made from the outbox
item's idempotency key, so every attempt at one answer is the same letter. Before sending,
the transport files the letter in the Sent folder flagged \\Draft ("about to send"), sends it
over SMTP, then clears \\Draft. An item found `sending` after a crash is re-delivered; the
transport first looks in the Sent folder for its Message-ID: filed without \\Draft means it
went out, so nothing is sent again. Filed with \\Draft means the crash hit the SMTP exchange
itself and nobody can tell whether the server took it: the letter is sent again (a rare
duplicate with the same Message-ID, which mail clients fold into one, beats an appeal that is
never answered). A server that files submitted mail in Sent by itself closes even that gap:
its copy, without \\Draft, counts as sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aioimaplib
import aiosmtplib

from bot.cases.replies import EMAIL_SOURCE, EMAIL_TRANSPORT
from bot.clock import Clock
from bot.messages.delivery import EXTERNAL_REF
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxOp,
    PermanentFailure,
    RetryLater,
)
from bot.messages.texts import Texts
from bot.model import Mention
from bot.settings.mail import EmailConfig
from handlers.email.letters import MAX_EXTERNAL_ID
from handlers.email.reader import ANSWER_ID_PREFIX, MailError, connect_imap

log = logging.getLogger(__name__)

MAX_SUBJECT = 200
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|ha|отв|ответ)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_REAL_ID = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")  # not a "uid:…" or hashed stand-in
_UIDS = re.compile(rb"\d+")
MentionLookup = Callable[[int], Awaitable[Mention | None]]


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the answer an outbox item sends: the same on every attempt."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{ANSWER_ID_PREFIX}{digest}@{domain}>"


def reply_subject(subject: str) -> str:
    """The letter's subject after one "Re: ", however many "Re:" or "Отв:" it had."""
    bare = _REPLY_PREFIX.sub("", subject).strip()
    return f"Re: {bare}"[:MAX_SUBJECT] if bare else "Re:"


def _subject_of(mention: Mention) -> str:
    # The reader puts the subject on the text's first line (handlers/email/letters.py).
    return mention.text.split("\n", 1)[0].strip()


def _real(message_id: str | None) -> str | None:
    if message_id and _REAL_ID.match(message_id) and len(message_id) <= MAX_EXTERNAL_ID:
        return message_id
    return None


class EmailTransport:
    name = EMAIL_TRANSPORT

    def __init__(
        self,
        config: EmailConfig,
        mention: MentionLookup,
        texts: Texts,
        clock: Clock,
        signature: str = "",
    ) -> None:
        self._config = config
        self._mention = mention
        self._texts = texts
        self._clock = clock
        self._signature = signature.strip()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        if item.op is OutboxOp.DELETE:
            raise PermanentFailure("a letter that was sent cannot be taken back")
        if item.payload["view"] != "public_reply":
            raise PermanentFailure(f"e-mail sends answers only, not {item.payload['view']!r}")
        reference = (item.reply_to_key or "").removeprefix(EXTERNAL_REF)
        if not reference.isdigit():
            raise PermanentFailure("no letter to answer")
        mention = await self._mention(int(reference))
        if mention is None:
            raise PermanentFailure("the letter's mention is gone (erased)")
        letter = self.letter(item.payload, mention, item.idempotency_key, item.case_id, item.op)
        message_id = str(letter["Message-ID"])
        try:
            async with self._sent_folder() as sent:
                if await self._filed(sent, message_id) == "sent":
                    log.info("email: answer %s went out before a restart; not sent again", item.id)
                    return DeliveryResult(external_ref=message_id)
                draft_uids = await self._file(sent, letter, message_id)
                await self._send(letter)
                await self._mark_sent(sent, draft_uids)
        except (OSError, TimeoutError, MailError, aioimaplib.Abort) as error:
            raise RetryLater(f"mail server: {error}") from None
        return DeliveryResult(external_ref=message_id)

    def letter(
        self,
        payload: object,
        mention: Mention,
        key: str,
        case_id: int | None,
        op: OutboxOp = OutboxOp.REPLY,
    ) -> EmailMessage:
        assert isinstance(payload, dict)
        address = mention.author.external_id
        if "@" not in address:
            raise PermanentFailure("the author's e-mail address is gone (erased)")
        # A letter cannot be edited: a correction is a new letter that says what it corrects.
        corrects = bool(payload.get("corrects")) or op is OutboxOp.EDIT
        text = self._texts.public_reply(str(payload["text"]), corrects)
        if self._signature:
            text = f"{text}\n\n{self._signature}"
        letter = EmailMessage()
        letter["From"] = Address(self._config.from_name, addr_spec=self._config.from_address)
        try:
            letter["To"] = address
        except (ValueError, IndexError) as error:
            raise PermanentFailure(f"not an address to write to: {error}") from None
        letter["Date"] = format_datetime(self._clock.now())
        letter["Message-ID"] = message_id_for(key, self._config.domain)
        parent = _real(mention.external_id) if mention.source == EMAIL_SOURCE else None
        if parent is not None:
            letter["Subject"] = reply_subject(_subject_of(mention))
            letter["In-Reply-To"] = f"<{parent}>"
            thread = dict.fromkeys(i for i in (_real(mention.story_id), parent) if i)
            letter["References"] = " ".join(f"<{i}>" for i in thread)
        else:  # a web-form appeal, or a letter without a Message-ID: a letter of its own
            letter["Subject"] = self._texts.t("email.answer_subject", case_id=case_id)
        letter.set_content(text)
        return letter

    @contextlib.asynccontextmanager
    async def _sent_folder(self) -> AsyncIterator[aioimaplib.IMAP4]:
        client = await connect_imap(self._config)
        try:
            folder = self._config.sent_mailbox
            if (await client.select(folder)).result != "OK":
                await client.create(folder)  # a fresh mailbox may have none yet
                if (await client.select(folder)).result != "OK":
                    raise MailError(f"cannot open the {folder!r} folder")
            yield client
        finally:
            with contextlib.suppress(Exception):
                await client.logout()

    async def _uids(self, sent: aioimaplib.IMAP4, message_id: str, *more: str) -> list[bytes]:
        found = await sent.uid_search("HEADER", "Message-ID", message_id, *more, charset=None)
        if found.result != "OK":
            raise MailError(f"SEARCH: {found.result}")
        return [uid for line in found.lines[:-1] for uid in _UIDS.findall(bytes(line))]

    async def _filed(self, sent: aioimaplib.IMAP4, message_id: str) -> str | None:
        """Whether the answer was "sent", is "pending" (filed as about to send), or None
        (never tried)."""
        # Any copy without \Draft proves it went out: ours once confirmed, or the one a
        # server that files submitted mail itself put there.
        if await self._uids(sent, message_id, "UNDRAFT"):
            return "sent"
        return "pending" if await self._uids(sent, message_id) else None

    async def _file(
        self, sent: aioimaplib.IMAP4, letter: EmailMessage, message_id: str
    ) -> list[bytes]:
        uids = await self._uids(sent, message_id)
        if not uids:  # "pending" keeps its earlier copy
            appended = await sent.append(
                letter.as_bytes(), mailbox=self._config.sent_mailbox, flags="(\\Draft \\Seen)"
            )
            if appended.result != "OK":
                raise MailError(f"APPEND: {appended.result}")
            uids = await self._uids(sent, message_id)
        return uids

    async def _mark_sent(self, sent: aioimaplib.IMAP4, uids: list[bytes]) -> None:
        for uid in uids:
            await sent.uid("store", uid.decode(), "-FLAGS.SILENT (\\Draft)")

    async def _send(self, letter: EmailMessage) -> None:
        config = self._config
        try:
            await aiosmtplib.send(
                letter,
                hostname=config.smtp_host,
                port=config.smtp_port,
                username=config.user,
                password=config.password,
                use_tls=config.smtp_tls == "ssl",
                start_tls=config.smtp_tls == "starttls",
                timeout=60,
            )
        # Only codes and kinds go into the outbox's error column and the log: a server's own
        # words often quote the address.
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = sorted({refused.code for refused in error.recipients})
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"the mail server refused the address ({codes})") from None
            raise RetryLater(f"the mail server deferred the address ({codes})") from None
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise PermanentFailure(
                    f"the mail server refused the letter ({error.code})"
                ) from None
            raise RetryLater(f"the mail server answered {error.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise RetryLater(f"mail server: {type(error).__name__}") from None
