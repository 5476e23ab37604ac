"""/forget through Telegram: an administrator erases a person; the card in the department chat
is redrawn without them, the database keeps nothing of them, and the audit chain verifies."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from tests.doubles.telegram_world import telegram_world

NAME = "Пётр Сидоров"  # the world's authors are all called this
TEXT = "Во дворе на Заозёрной улице второй месяц стоит разрытая траншея"


async def test_forget_from_a_chat_erases_the_person_and_redraws_the_card(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case(TEXT, author="id-zaozernaya")
        card = await world.card(case_id)
        assert NAME in (card.text or "") and "Заозёрной" in (card.text or "")
        async with world.app.database.reader() as uow:
            (mention,) = await uow.mentions.for_case(case_id)
        author_id = mention.author_id

        refused = world.say("spec", world.coordination, f"/forget {author_id}")
        assert "Нет прав" in ((await world.answer_to(refused)).text or "")
        stranger = world.say("stranger", world.coordination, f"/forget {author_id}")
        assert "нет в списке" in ((await world.answer_to(stranger)).text or "")

        asked = world.say("admin", world.coordination, f"/forget {author_id}")
        answer = (await world.answer_to(asked)).text or ""
        assert f"автора {author_id} удалены" in answer
        await world.idle()
        card = world.server.message(card.chat_id, card.message_id)
        assert NAME not in (card.text or "") and "Заозёрной" not in (card.text or "")

        again = world.say("admin", world.coordination, f"/forget {author_id}")
        assert "уже удалены" in ((await world.answer_to(again)).text or "")
        await world.idle()

        async with world.app.database.reader() as uow:
            assert (await uow.events.verify()).ok
        stored = Path(make_url(world.app.database.url).database or "")
        data = b"".join(p.read_bytes() for p in stored.parent.glob(stored.name + "*"))
        assert "Заозёрной".encode() not in data and b"id-zaozernaya" not in data
