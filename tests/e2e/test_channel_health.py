"""Channel health end to end: Telegram's Bot API goes down while the sandbox (a second
transport) works. The card cannot reach Telegram; after 15 minutes on the App's clock the
coordination chat gets ONE notice (in the sandbox; Telegram's copy waits in the outbox), and
/metrics and /status say which channel fails and since when. Real dispatcher, real outbox,
the project's Telegram test server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.clock import FrozenClock
from bot.staff.rights import Actor
from handlers.app import App
from tests.doubles.telegram_world import telegram_world

MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the condition did not come true")
        await asyncio.sleep(0.02)


def _state(app: App, channel: str) -> Any:
    return next((s for s in app.channels.states() if s.channel == channel), None)


def _failing(app: App, channel: str) -> bool:
    state = _state(app, channel)
    return state is not None and state.failing


def _delivered(app: App, channel: str) -> bool:
    state = _state(app, channel)
    return state is not None and state.last_delivered_at is not None


def _notice(message: dict[str, Any]) -> bool:
    text = str(message.get("body", ""))
    return "Telegram" in text and "отправка не проходит" in text


async def test_a_channel_failing_for_15_minutes_posts_one_notice(tmp_path: Path) -> None:
    clock = FrozenClock(MONDAY)
    async with telegram_world(tmp_path, clock=clock, sandbox=True) as world:
        app = world.app
        sandbox = app.sandbox
        assert sandbox is not None
        await world.server.stop()  # the Bot API is unreachable from now on

        case_id = await world.open_case()  # its card goes to Telegram and to the sandbox
        await until(lambda: _failing(app, "telegram") and _delivered(app, "sandbox"))
        states = {s.channel: s for s in app.channels.states()}
        assert states["vk"].last_received_at == MONDAY
        assert states["telegram"].failing_since == MONDAY
        assert "TelegramNetworkError" in (states["telegram"].last_error or "")
        assert not states["sandbox"].failing

        clock.advance(timedelta(minutes=14))
        assert await app.channel_jobs.run() == []
        clock.advance(timedelta(minutes=1))
        assert len(await app.channel_jobs.run()) == 1
        clock.advance(timedelta(minutes=1))
        assert await app.channel_jobs.run() == []  # still failing: nothing more
        await until(lambda: any(_notice(m) for m in sandbox.chats.messages("coordination")))
        notices = [m for m in sandbox.chats.messages("coordination") if _notice(m)]
        assert len(notices) == 1, sandbox.chats.messages("coordination")
        assert "10:00" in str(notices[0]["body"])  # since 10:00 Moscow time

        metrics = app.metrics.render(0).decode()
        assert 'otklik_channel_delivery_failing{channel="telegram"} 1.0' in metrics
        assert 'otklik_channel_delivery_failing{channel="sandbox"} 0.0' in metrics
        since = 'otklik_channel_failing_since_timestamp_seconds{channel="telegram"} '
        (line,) = [x for x in metrics.splitlines() if x.startswith(since)]
        assert float(line.removeprefix(since)) == MONDAY.timestamp()
        assert 'otklik_channel_last_received_timestamp_seconds{channel="vk"}' in metrics

        duty = app.directory.by_staff_id("duty")
        assert isinstance(duty, Actor)
        view = await app.answers.status(duty, None)
        assert view["view"] == "page"
        status = app.texts.render(view["template"], **view["context"])
        assert "🔴 Telegram: отправка не проходит 16 минут" in status
        assert "🟢 песочница: отправка в порядке" in status
        assert case_id
