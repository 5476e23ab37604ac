"""A channel failing for 15 minutes: one notice in the coordination chat through the outbox,
one when it works again, a new pair for a new failing; an injected clock, a real database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import FrozenClock
from bot.messages.health import ChannelHealth
from bot.reports.channels import ChannelWatch
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import make_config

MOSCOW = ZoneInfo("Europe/Moscow")
MINUTE = timedelta(minutes=1)


async def test_one_notice_per_failing_and_one_when_it_recovers(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    config = make_config(tmp_path, sqlite_url)
    directory = Directory(config, frozenset({"telegram"}))
    health = ChannelHealth()
    watch = ChannelWatch(database.uow, clock, directory, health, MOSCOW)
    try:
        start = clock.now()
        health.failed("vk", start, "RetryLater: VK error 10: internal server error")
        clock.advance(14 * MINUTE)
        health.failed("vk", clock.now(), "RetryLater: VK error 10: internal server error")
        assert await watch.check() == []  # 14 minutes: not yet
        clock.advance(MINUTE)
        stamp = int(start.timestamp() * 1000)
        assert await watch.check() == [f"channel-failing:vk:{stamp}"]
        clock.advance(MINUTE)
        assert await watch.check() == []  # still failing: nothing more
        # A restart forgets what it announced; the outbox key still says it was posted.
        again = ChannelWatch(database.uow, clock, directory, health, MOSCOW)
        assert await again.check() == [f"channel-failing:vk:{stamp}"]
        async with database.uow() as uow:
            [item] = await uow.outbox.due_heads(clock.now(), 10)
            assert await uow.outbox.depth() == 1
        [coordination] = directory.destinations(directory.coordination)
        assert (item.transport, item.chat) == (coordination.transport, coordination.chat)
        assert item.payload["key"] == "channel.failing"
        assert item.payload["params"]["channel"] == "vk"
        assert "internal server error" in item.payload["params"]["reason"]

        health.delivered("vk", clock.now())
        assert await watch.check() == [f"channel-recovered:vk:{stamp}"]
        assert await watch.check() == []
        # Failing again is a new story: after another 15 minutes, a new notice.
        clock.advance(MINUTE)
        second = clock.now()
        health.failed("vk", second, "RetryLater: timeout")
        clock.advance(15 * MINUTE)
        assert await watch.check() == [f"channel-failing:vk:{int(second.timestamp() * 1000)}"]
        async with database.uow() as uow:
            assert await uow.outbox.depth() == 3
    finally:
        await database.dispose()


async def test_a_short_failure_posts_nothing(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    config = make_config(tmp_path, sqlite_url)
    directory = Directory(config, frozenset({"telegram"}))
    health = ChannelHealth()
    watch = ChannelWatch(database.uow, clock, directory, health, MOSCOW)
    try:
        health.failed("telegram", clock.now(), "TelegramNetworkError")
        clock.advance(10 * MINUTE)
        health.delivered("telegram", clock.now())
        clock.advance(10 * MINUTE)
        assert await watch.check() == []
        async with database.uow() as uow:
            assert await uow.outbox.depth() == 0
    finally:
        await database.dispose()
