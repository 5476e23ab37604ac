"""A storm on the VK community page: hundreds of Callback API events stored while the bot is
down are taken in by batches after it starts again (handlers/vk/intake.py), each one mention
once, replies and edits in the case of their thread, every author with the name VK gives."""

from __future__ import annotations

from pathlib import Path

from bot.cases.replies import VK_WALL_SOURCE
from tests.doubles.vk_world import GROUP, POST, vk_world

THREADS = 10
PER_THREAD = 30  # the first comment and its replies: 300 comments in all
TOPICS = (  # complaints, each its own story
    "Третий день нет горячей воды! Когда наконец дадут?!",
    "Автобус 12 опять не пришёл, стоим на морозе час, безобразие!",
    "Двор завален снегом, не пройти, дворников нет неделю!",
    "Фонари на Лесной не горят, страшно ходить вечером, жалоба!",
    "Крыша в подъезде течёт, потолок в плесени, никто не чинит!",
    "Огромная яма на дороге у школы, машины бьются, ужас!",
    "Мусор с площадки не вывозят две недели, вонь и крысы!",
    "Лифт сломан месяц, пожилые не могут выйти из дома!",
    "Стройка шумит всю ночь, спать невозможно, сколько можно!",
    "В квартире нет отопления, дети мёрзнут, позор!",
)


def external(comment_id: int) -> str:
    return f"-{GROUP}_{POST}:{comment_id}"


async def test_a_burst_stored_while_down_becomes_mentions_once_in_their_cases_with_names(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        intake = world.app.vk_intake
        assert intake is not None
        await intake.stop()  # the events are stored and answered "ok", not yet taken in
        threads: list[list[int]] = []
        authors: dict[int, str] = {}
        author_of: dict[int, int] = {}  # comment id → its author
        for thread in range(THREADS):
            ids: list[int] = []
            for n in range(PER_THREAD):
                author = 20_000 + thread * PER_THREAD + n
                world.vk.add_person(author, f"Имя{author}", "Горожанин")
                authors[author] = f"Имя{author} Горожанин"
                text = f"{TOPICS[thread]} (№{n + 1})"
                comment = world.vk.comment(GROUP, POST, author, text, ids[0] if ids else None)
                ids.append(comment.id)
                author_of[comment.id] = author
                answers = await world.callback.send(
                    "wall_reply_new", comment.as_object(), event_id=f"new{comment.id}"
                )
                assert answers[-1].ok
            threads.append(ids)
        # Each thread's first comment is edited, the same edit comes twice (new event ids),
        # and VK retries some events (the same event ids): one mention each, no more.
        edits: list[tuple[int, str]] = []
        for thread, ids in enumerate(threads):
            first = world.vk.comments(GROUP, POST)[thread * PER_THREAD]
            assert first.id == ids[0]
            edited = {**first.as_object(), "text": first.text + " Исправлено."}
            for copy in range(2):
                answers = await world.callback.send(
                    "wall_reply_edit", edited, event_id=f"edit{first.id}x{copy}"
                )
                assert answers[-1].ok
            edits.append((first.id, edited["text"]))
        for ids in threads[:3]:
            comment = next(c for c in world.vk.comments(GROUP, POST) if c.id == ids[5])
            assert (
                await world.callback.send(
                    "wall_reply_new", comment.as_object(), event_id=f"new{comment.id}"
                )
            )[-1].ok

        # The bot dies and starts again: what was stored is taken in now.
        await world.crash()
        await world.restart()
        await world.idle(within=60)

        async with world.app.database.uow() as uow:
            case_of_thread: list[int] = []
            for ids in threads:
                mentions = [
                    await uow.mentions.get_by_external(VK_WALL_SOURCE, external(i)) for i in ids
                ]
                assert all(m is not None for m in mentions)
                cases = {m.case_id for m in mentions if m is not None}
                assert len(cases) == 1 and None not in cases  # the thread is one case
                case_of_thread.append(cases.pop())  # type: ignore[arg-type]
                for comment_id, mention in zip(ids, mentions, strict=True):
                    assert mention is not None and mention.author_id is not None
                    author = await uow.authors.get(mention.author_id)
                    assert author is not None
                    assert author.display_name == authors[author_of[comment_id]]
            for thread, (comment_id, text) in enumerate(edits):
                in_case = await uow.mentions.for_case(case_of_thread[thread])
                edited = [
                    m for m in in_case if m.external_id.startswith(f"{external(comment_id)}:edit:")
                ]
                assert [m.text for m in edited] == [text]  # the edit joined, once
                assert len(in_case) == PER_THREAD + 1  # no replayed event made a second mention
        # Names came from users.get by the batch, not one call per author.
        looked_up = [p for name, p in world.vk.calls if name == "users.get"]
        asked = [int(i) for p in looked_up for i in p["user_ids"].split(",")]
        assert sorted(asked) == sorted(authors)
        assert len(looked_up) < THREADS


async def test_when_vk_gives_no_names_the_mentions_go_in_without_and_vk_is_not_asked_again(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        world.vk.fail_next("users.get", 10)  # VK's internal server error
        taken: list[tuple[int, int]] = []  # (comment id, author)
        for author in (30_001, 30_002):
            world.vk.add_person(author, "Имя", "Фамилия")
            comment = world.vk.comment(GROUP, POST, author, TOPICS[author % len(TOPICS)])
            assert (await world.callback.send("wall_reply_new", comment.as_object()))[-1].ok
            await world.idle()
            taken.append((comment.id, author))
        async with world.app.database.uow() as uow:
            for comment_id, author in taken:
                mention = await uow.mentions.get_by_external(VK_WALL_SOURCE, external(comment_id))
                assert mention is not None and mention.author_id is not None
                card = await uow.authors.get(mention.author_id)
                assert card is not None and card.display_name == f"id{author}"
        # Asked once; the second comment, within the pause, did not wait for VK again.
        assert [name for name, _ in world.vk.calls].count("users.get") == 1
