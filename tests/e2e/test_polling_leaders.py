"""Long polling across a leader change (handlers/telegram/polling.py, once.py): the new
leader asks from the offset the old one stored, and an update the old leader still had in
hand when it stopped leading, fetched again by the new one, acts once. Also an update
another instance handled, or is handling, and one whose instance died; and a stored offset
too old to trust is not used (one process on SQLite, which claims nothing). Real aiogram
polling over HTTP against the Telegram test server; Apps on one PostgreSQL database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.model import Action, CaseState
from handlers.telegram.polling import OFFSET_KEPT, OFFSET_KEY
from store.models import TelegramUpdateRow
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.telegram_world import World, telegram_world
from tests.e2e.test_webhook_telegram import bot_replies, calls_answering
from tests.handlers.ingest.test_api_hostile import own_postgres_database

RECLAIM_S = 1.0  # the old leader's handling below lasts three times as long


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as url:
        yield url


async def takes(world: World, case_id: int) -> int:
    async with world.app.database.uow() as uow:
        return [e.kind for e in await uow.events.for_case(case_id)].count(Action.TAKE)


async def claims(world: World) -> dict[int, tuple[str, str]]:
    row = TelegramUpdateRow
    async with world.app.database.uow() as uow:
        result = await uow.session.execute(select(row.update_id, row.state, row.instance))
        return {u: (s, i) for u, s, i in result}


@pytest.mark.postgres
async def test_a_new_leader_continues_from_the_stored_offset_and_acts_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with telegram_world(
        tmp_path,
        instances=2,
        database_url=postgres_url,
        leading=False,  # the leader lock decides: the first App
        reclaim_after_s=RECLAIM_S,
    ) as world:
        old, new = world.apps
        server, bot = world.server, world.bot
        await server.wait_for(lambda: server.is_polling(bot), timeout=10)
        assert old.leadership.leading and not new.leadership.leading

        status = world.say("duty", world.coordination, "/status")
        await world.answer_to(status)
        case_id = await world.open_case()
        card = await world.card(case_id)
        await world.idle()

        # The old leader's answer to a press comes back slowly: it has the press in hand, not
        # yet confirmed to Telegram, when it stops leading and the other instance polls.
        server.slow_next_answer("answerCallbackQuery", 3 * RECLAIM_S)
        press_id = server.next_update_id(bot)
        query = server.press_button(
            card.chat_id, card.message_id, world.person("spec"), button_text="Взять"
        )
        await server.wait_for(lambda: calls_answering(world, query) == 1, timeout=10)
        assert press_id in [u["update_id"] for u in server.pending_updates(bot)]
        polls_before = len(server.calls("getUpdates"))
        old.leadership.set(False)
        new.leadership.set(True)

        # The new leader fetches the press again, finds it in hand (renewed, though the
        # handling outlasts the reclaim time), waits, and finds it done.
        await server.wait_for(lambda: not server.pending_updates(bot), timeout=30)
        await world.idle(within=20)
        assert calls_answering(world, query) == 1
        assert await takes(world, case_id) == 1
        assert (await world.case(case_id)).state is CaseState.TAKEN
        assert (await claims(world))[press_id] == ("done", "otklik-0")
        # It asked from where the old leader stored: past everything before the press.
        assert int(server.calls("getUpdates")[polls_before].params["offset"]) == press_id

        # And the new leader handles what comes next, once.
        again = world.say("duty", world.coordination, "/status")
        await world.answer_to(again)
        await world.idle()
        assert bot_replies(world, world.coordination, again.message_id) == 1
        assert bot_replies(world, world.coordination, status.message_id) == 1
        rows = await claims(world)
        assert rows[max(rows)] == ("done", "otklik-1")


@pytest.mark.postgres
async def test_polling_acts_once_on_updates_claimed_elsewhere(
    tmp_path: Path, postgres_url: str
) -> None:
    """The leader polling: an update another instance handled is confirmed without acting;
    one in hand elsewhere is waited for; one whose instance died is handled here."""
    async with telegram_world(tmp_path, leading=False, database_url=postgres_url) as world:
        app, server, bot = world.app, world.server, world.bot
        database = app.database
        reclaim = timedelta(seconds=app.config.telegram.webhook.reclaim_after_s)  # type: ignore[union-attr]
        now = app.clock.now()
        handled, in_hand, dead = (server.next_update_id(bot) + n for n in range(3))
        async with database.uow() as uow:
            repo = uow.telegram_updates
            await repo.claim(bot.id, handled, "old-leader", now, now)
            await repo.done(bot.id, [handled], now)
            await repo.claim(bot.id, in_hand, "old-leader", now, now)
            long_ago = now - reclaim - timedelta(seconds=1)
            await repo.claim(bot.id, dead, "dead", long_ago, long_ago)
            await uow.commit()
        messages = [world.say("duty", world.coordination, "/status") for _ in range(3)]
        assert [u["update_id"] for u in server.pending_updates(bot)][-3:] == [
            handled,
            in_hand,
            dead,
        ]

        app.leadership.set(True)
        await world.answer_to(messages[2])  # the dead instance's: handled here
        assert bot_replies(world, world.coordination, messages[1].message_id) == 0
        assert server.pending_updates(bot)  # not confirmed while one is in hand elsewhere
        async with database.uow() as uow:  # the old leader finishes it
            await uow.telegram_updates.done(bot.id, [in_hand], app.clock.now())
            await uow.commit()
        await server.wait_for(lambda: not server.pending_updates(bot), timeout=15)
        await world.idle()
        assert [bot_replies(world, world.coordination, m.message_id) for m in messages] == [
            0,
            0,
            1,
        ]
        assert (await claims(world))[dead] == ("done", app.config.instance_name)


async def test_a_stored_offset_too_old_to_trust_is_not_used(tmp_path: Path) -> None:
    """After a week without updates Telegram may number new ones lower: an offset stored
    long ago would confirm them unread."""
    async with telegram_world(tmp_path, leading=False) as world:
        app, server, bot = world.app, world.server, world.bot
        stale = app.clock.now() - OFFSET_KEPT - timedelta(minutes=1)
        async with app.database.uow() as uow:
            await uow.kv.set(
                OFFSET_KEY.format(bot_id=bot.id),
                json.dumps({"offset": 10**9, "at": stale.isoformat()}),
            )
            await uow.commit()
        status_id = server.next_update_id(bot)
        status = world.say("duty", world.coordination, "/status")
        app.leadership.set(True)
        await world.answer_to(status)
        assert "offset" not in server.calls("getUpdates")[0].params
        async with app.database.uow() as uow:  # what it stored instead: past the command
            kept = json.loads(await uow.kv.get(OFFSET_KEY.format(bot_id=bot.id)) or "{}")
        assert kept["offset"] == status_id + 1
        assert await claims(world) == {}  # one process on SQLite claims nothing
