"""What a Telegram message brings as attachments: the photo is the largest of its sizes within
the bound (else the smallest), documents, videos and audio keep their name, type and size,
all by file id; a message with neither text nor a file brings nothing."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message

from bot.model import AttachmentKind
from handlers.telegram.comments import attachments

SIZES = [
    {"file_id": f"p{n}", "file_unique_id": f"u{n}", "width": w, "height": w, "file_size": s}
    for n, (w, s) in enumerate(((90, 1_000), (320, 20_000), (800, 300_000), (1280, 900_000)))
]


def message(**fields: Any) -> Message:
    return Message.model_validate(
        {
            "message_id": 5,
            "date": 1_796_000_000,
            "chat": {"id": 7777, "type": "private", "first_name": "Пётр"},
            **fields,
        }
    )


def test_the_photo_is_the_largest_size_within_the_bound() -> None:
    photo = message(photo=SIZES, caption="Вот")
    assert [a.ref for a in attachments(photo, 10_000_000)] == ["telegram:p3"]
    assert [a.ref for a in attachments(photo, 500_000)] == ["telegram:p2"]
    (small,) = attachments(photo, 10)  # nothing fits: the smallest, still listed
    assert (small.ref, small.size, small.kind) == ("telegram:p0", 1_000, AttachmentKind.PHOTO)


def test_files_keep_name_type_and_size_and_plain_text_brings_nothing() -> None:
    document = {
        "file_id": "d1",
        "file_unique_id": "du1",
        "file_name": "акт.pdf",
        "mime_type": "application/pdf",
        "file_size": 120_009,
    }
    (found,) = attachments(message(document=document), 10_000_000)
    assert (found.kind, found.ref, found.name) == (
        AttachmentKind.DOCUMENT,
        "telegram:d1",
        "акт.pdf",
    )
    assert (found.mime, found.size) == ("application/pdf", 120_009)
    video = {"file_id": "v1", "file_unique_id": "vu1", "width": 1, "height": 1, "duration": 3}
    (clip,) = attachments(message(video=video), 10_000_000)
    assert clip.kind is AttachmentKind.VIDEO and clip.size is None
    voice = {"file_id": "a1", "file_unique_id": "au1", "duration": 3, "mime_type": "audio/ogg"}
    (said,) = attachments(message(voice=voice), 10_000_000)
    assert said.kind is AttachmentKind.AUDIO and said.mime == "audio/ogg"
    assert attachments(message(text="Просто текст"), 10_000_000) == ()
