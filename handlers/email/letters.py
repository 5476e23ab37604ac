"""Letters as mentions: parsing (Python's email package, policy=default), HTML made text with
a whitelist, attachments listed, sizes bounded. Pure and synchronous: the reader runs it in a
worker thread, since a big letter takes real CPU to decode.

Next stop: reader.py, which fetches letters over IMAP and hands them to intake.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from bot.cases.replies import EMAIL_IDENTITY, EMAIL_SOURCE
from bot.model import (
    EMAIL_PART,
    MAX_MENTION_TEXT,
    MAX_NAME,
    Attachment,
    AttachmentKind,
    Identity,
    Mention,
    bounded_attachments,
)
from handlers.html_text import text_of_html

MAX_EXTERNAL_ID = 256  # the store's column
MAX_SUBJECT = 512
MAX_REFERENCES = 50  # a thread deeper than this is still one thread by its root
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,998})>")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\s*\n\s*(\n\s*)+")
_KINDS = {
    "image": AttachmentKind.PHOTO,
    "video": AttachmentKind.VIDEO,
    "audio": AttachmentKind.AUDIO,
}


@dataclass(frozen=True, slots=True)
class Letter:
    """What Otklik keeps of a letter: all of it is the citizen's, sealed in the mention."""

    message_id: str | None  # without angle brackets
    thread_root: str | None  # the first letter of the thread: References' first, or its own
    sender: str  # lower-cased address; "" when the From header has none
    sender_name: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...]
    sent_at: datetime | None
    automatic: bool  # an auto-reply or a bounce: never a mention (no mail loops)
    replies_to: tuple[str, ...] = ()  # In-Reply-To and References, newest first


def html_to_text(html: str) -> str:
    return tidy(text_of_html(html))


def tidy(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _LINES.sub("\n\n", "\n".join(lines)).strip()


def message_ids(value: str | None) -> list[str]:
    """The Message-IDs in a header (In-Reply-To, References), without angle brackets."""
    return _MESSAGE_ID.findall(value or "")[:MAX_REFERENCES]


def bounded_id(message_id: str) -> str:
    """A Message-ID that fits the store's external id; a longer one is hashed, not cut."""
    if len(message_id) <= MAX_EXTERNAL_ID:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode(errors="replace")).hexdigest()


def _header(message: Message, name: str) -> str:
    """A header's value, decoded; a value the header registry chokes on (the stdlib parser
    has its corner cases) is decoded by hand from the raw text."""
    try:
        value = message.get(name)
        return str(value or "").replace("\x00", "")
    except Exception:  # any malformed header: fall back to the raw text
        pass
    raw = next((str(v) for k, v in message.raw_items() if k.lower() == name.lower()), "")
    try:
        value = str(make_header(decode_header(raw)))
    except Exception:  # undecodable words stay as they came
        value = raw
    return value.replace("\x00", "")


def _sender(message: Message) -> tuple[str, str]:
    raw = _header(message, "From")
    found = getaddresses([raw])
    for name, address in found:
        if "@" in address:
            return address.strip().lower()[:320], name.strip()[:MAX_NAME]
    return "", ""


def _text_of(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken encoding
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    return ""


def _body(message: EmailMessage) -> str:
    """text/plain when the letter has it, else its HTML made text."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except (KeyError, ValueError, TypeError):
        part = None
    if part is None:
        return ""
    text = _text_of(part)
    return html_to_text(text) if part.get_content_subtype() == "html" else tidy(text)


def _attachments(message: EmailMessage) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    try:
        parts = list(message.iter_attachments())
    except (KeyError, ValueError, TypeError):
        return ()
    for number, part in enumerate(parts, start=1):
        name = tidy(str(part.get_filename() or ""))[:MAX_NAME]
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else None
        mime = part.get_content_type()[:128]
        found.append(
            Attachment(
                _KINDS.get(part.get_content_maintype(), AttachmentKind.DOCUMENT),
                f"{EMAIL_PART}{number}",
                name=name,
                mime=mime,
                size=size,
            )
        )
    return bounded_attachments(found)


def _automatic(message: Message) -> bool:
    auto = _header(message, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    content_type = _header(message, "Content-Type").lower()
    return "multipart/report" in content_type or bool(_header(message, "X-Autoreply"))


def _sent_at(message: Message) -> datetime | None:
    raw = _header(message, "Date")
    try:
        moment = parsedate_to_datetime(raw) if raw else None
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def parse_letter(raw: bytes, *, headers_only: bool = False) -> Letter:
    """A letter from its bytes; `headers_only` for a letter too big to read (its body and
    attachments are not looked at)."""
    message = BytesParser(policy=policy.default).parsebytes(raw, headersonly=headers_only)
    assert isinstance(message, EmailMessage)
    own = message_ids(_header(message, "Message-ID"))
    references = message_ids(_header(message, "References"))
    parent = message_ids(_header(message, "In-Reply-To"))
    message_id = bounded_id(own[0]) if own else None
    root = references[0] if references else (parent[0] if parent else None)
    sender, name = _sender(message)
    return Letter(
        message_id=message_id,
        thread_root=bounded_id(root) if root else message_id,
        sender=sender,
        sender_name=name,
        subject=tidy(_header(message, "Subject"))[:MAX_SUBJECT],
        body="" if headers_only else _body(message),
        attachments=() if headers_only else _attachments(message),
        sent_at=_sent_at(message),
        automatic=_automatic(message),
        replies_to=tuple(dict.fromkeys([*parent, *reversed(references)])),
    )


def letter_mention(
    letter: Letter, fallback_id: str, now: datetime, note: str = "", story: str | None = None
) -> Mention:
    """The mention of a letter. The external id is its Message-ID, else `fallback_id` (the
    mailbox's UIDVALIDITY and the letter's UID): either way, reading it twice stores it once.
    Its thread root is the story (unless `story`, the case's own, is known): a reply
    (In-Reply-To, References) joins the case the first letter opened. The subject is the
    text's first line."""
    body = "\n\n".join(part for part in (letter.body, note) if part)
    text = "\n\n".join(part for part in (letter.subject, body) if part)
    return Mention(
        source=EMAIL_SOURCE,
        external_id=letter.message_id or fallback_id,
        text=text[:MAX_MENTION_TEXT],
        author=Identity(EMAIL_IDENTITY, letter.sender, letter.sender_name or letter.sender),
        received_at=now,
        published_at=letter.sent_at,
        story_id=story or letter.thread_root or letter.message_id or fallback_id,
        attachments=letter.attachments,
    )


def valid_sender(letter: Letter) -> bool:
    try:
        Address(addr_spec=letter.sender)
    except (ValueError, IndexError, TypeError):
        return False
    return bool(letter.sender)
