"""Attachments through Telegram: a citizen's comment with a photo in the channel's discussion
group becomes a card that lists the photo and has the photo itself posted under it, once, by
the file id Telegram gave the bot (no download, no upload); a document is listed, not posted;
/case lists them all. Real App, real aiogram polling, the project's Telegram test server: a
person's photo arrives as Telegram sends it, a PhotoSize array smallest first, each size with
its own file_id."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from bot.cases.replies import telegram_comment_id
from bot.messages.texts import spell_size
from bot.model import AttachmentKind, Mention
from handlers.telegram.comments import DM_SOURCE
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

COMPLAINT = "Прорыв трубы на Садовой, кипяток заливает подъезд! Вот фото"


def png(width: int, height: int, size: int) -> bytes:
    """A PNG of that width and height, `size` bytes long: the header is all a PhotoSize
    needs, the rest stands for the pixels."""
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    header += struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\x00" * 4
    return header + b"\x00" * (size - len(header))


async def arrived(world: World, source: str, external_id: str, within: float = 10) -> Mention:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with world.app.database.uow() as uow:
            found = await uow.mentions.get_by_external(source, external_id)
        if found is not None:
            return found
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no mention {source} {external_id}")


def photos_under(world: World, card: StoredMessage) -> list[StoredMessage]:
    return [
        m
        for m in world.server.messages(world.housing)
        if m.bot_id is not None and m.photo is not None and m.reply_to_message_id == card.message_id
    ]


async def test_a_comment_with_a_photo_becomes_a_card_that_shows_it(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        server = world.server
        post = server.post_to_channel(world.channel, "Плановые работы на теплосети в Заречном")
        thread = post.discussion_message_id
        assert thread is not None
        olga = server.create_user("Ольга", username="olga_k", last_name="Кузнецова")
        picture = png(2000, 1500, 1_300_000)
        comment = server.send_user_photo(world.discussion, olga, picture, COMPLAINT, thread)
        # What Telegram sent the bot: four sizes, smallest first, the largest the original.
        sizes = comment.photo
        assert sizes is not None and [s["width"] for s in sizes] == [90, 320, 800, 1280]
        assert sizes[-1]["file_size"] < len(picture)  # 1280 px: scaled down from 2000

        found = await arrived(
            world, "telegram", telegram_comment_id(world.discussion, comment.message_id)
        )
        # The caption is the mention's text; the largest size within the bound is the photo.
        assert found.text == COMPLAINT
        (photo,) = found.attachments
        assert photo.kind is AttachmentKind.PHOTO and photo.mime == "image/jpeg"
        assert photo.ref == f"telegram:{sizes[-1]['file_id']}"
        assert photo.size == sizes[-1]["file_size"] and photo.name == ""

        assert found.case_id is not None
        case_id = found.case_id
        card = await world.card(case_id)
        await world.idle()
        shown = f"📎 фото, {spell_size(sizes[-1]['file_size'], 'ru')}"  # "📎 фото, 520 КБ"
        assert shown in (card.text or ""), card.text

        # The photo itself, once, in the card's topic as a reply to the card, sent by file id.
        (under,) = photos_under(world, card)
        assert under.thread_id == world.topic and under.caption == f"📎 К кейсу №{case_id}: фото"
        assert under.photo_bytes == picture  # the very file the citizen sent
        (call,) = [c for c in server.calls("sendPhoto") if c.ok]
        assert call.params["photo"] == sizes[-1]["file_id"]  # a reference, no upload
        assert call.params["chat_id"] == str(world.housing)

        # The card changes (taken): it keeps listing the photo, which is not posted again.
        await world.press("spec", card, "Взять")
        await world.idle()
        card = await world.card(case_id)
        assert "👤 Анна Иванова" in (card.text or "") and shown in (card.text or "")
        assert len(photos_under(world, card)) == 1

        # /case N lists the attachments.
        asked = world.say("spec", world.housing, f"/case {case_id}", world.topic)
        page = (await world.answer_to(asked)).text or ""
        assert "Вложения" in page and shown in page

        # A document (under another post: comments in one thread join one case) is listed
        # with its name and size, and not posted: only photos are.
        other = server.post_to_channel(world.channel, "График отключений горячей воды")
        assert other.discussion_message_id is not None
        report = server.send_user_document(
            world.discussion,
            server.create_user("Иван"),
            b"%PDF-1.7 " + b"0" * 120_000,
            "акт_осмотра.pdf",
            "application/pdf",
            "Прорыв трубы на Ленина, кипяток заливает подвал! Акт во вложении",
            other.discussion_message_id,
        )
        found = await arrived(
            world, "telegram", telegram_comment_id(world.discussion, report.message_id)
        )
        (document,) = found.attachments
        assert (document.kind, document.name) == (AttachmentKind.DOCUMENT, "акт_осмотра.pdf")
        assert document.mime == "application/pdf" and document.size == 120_009
        assert found.case_id is not None and found.case_id != case_id
        card = await world.card(found.case_id)
        await world.idle()
        assert "📎 документ «акт_осмотра.pdf», 117 КБ" in (card.text or ""), card.text
        assert photos_under(world, card) == []
        assert len([c for c in server.calls("sendPhoto") if c.ok]) == 1


async def test_a_private_message_with_only_a_photo_is_a_mention_with_it(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, "en", direct_messages=True) as world:
        server = world.server
        citizen = world.person("citizen")
        picture = png(640, 480, 50_000)  # 90 and 320 px previews, then the original
        sent = server.send_user_photo(citizen.id, citizen, picture)  # no caption at all
        assert sent.photo is not None and [p["width"] for p in sent.photo] == [90, 320, 640]
        found = await arrived(world, DM_SOURCE, f"{citizen.id}:{sent.message_id}")
        assert found.text == ""
        (photo,) = found.attachments
        assert photo.ref == f"telegram:{sent.photo[-1]['file_id']}" and photo.size == 50_000
        # Acknowledged like any private message.
        answer = await world.answer_to(sent)
        assert (answer.text or "").startswith("Thank you")
