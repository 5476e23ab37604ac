"""A channel whose deliveries have failed for FAILING_NOTICE_AFTER: one notice in the
coordination chat, through the outbox; when it works again, one more to say so. A channel
that recovers and fails again is a new episode with notices of its own.

The outbox key names the channel and the moment its failing began, so a check that runs twice
(or a restart between queueing and recording) posts nothing twice. The state comes from
bot/messages/health.py; handlers/jobs/channels.py runs the check every minute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.messages.health import ChannelHealth, ChannelState
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.views import View, format_time, notice_view
from bot.ports import UnitOfWorkFactory
from bot.staff.directory import Directory

__all__ = ["FAILING_NOTICE_AFTER", "ChannelWatch"]

log = logging.getLogger(__name__)

FAILING_NOTICE_AFTER = timedelta(minutes=15)
_URGENCY = 1  # above routine notices, below cards of urgent cases


class ChannelWatch:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        health: ChannelHealth,
        tz: ZoneInfo,
        on_outbox: Callable[[], None] = lambda: None,
        after: timedelta = FAILING_NOTICE_AFTER,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._directory = directory
        self._health = health
        self._tz = tz
        self._on_outbox = on_outbox
        self._after = after
        # Channels announced as failing, with the moment their failing began.
        self._announced: dict[str, datetime] = {}

    async def check(self) -> list[str]:
        """Post what is due; returns the keys of the notices queued now."""
        now = self._clock.now()
        due: list[tuple[str, View]] = []
        for state in self._health.states():
            since = state.failing_since
            announced = self._announced.get(state.channel)
            if announced is not None and since != announced:
                # Recovered (and perhaps failing again since: that is a new episode).
                del self._announced[state.channel]
                due.append(self._recovered(state.channel, announced))
            if since is not None and now - since >= self._after and since != announced:
                self._announced[state.channel] = since
                due.append(self._failing(state, since))
        if not due:
            return []
        items: list[OutboxItem] = []
        for key, view in due:
            items += [
                dest.message(OutboxOp.POST, view, key, now, ref=None, urgency=_URGENCY)
                for dest in self._directory.destinations(self._directory.coordination)
            ]
        if items:
            async with self._uow() as uow:
                queued = await uow.outbox.enqueue(items)  # a key queued before is skipped
                await uow.commit()
            if queued:
                self._on_outbox()
        return [key for key, _ in due]

    def _failing(self, state: ChannelState, since: datetime) -> tuple[str, View]:
        log.warning(
            "channel %s: deliveries have failed since %s: %s",
            state.channel,
            since.isoformat(),
            state.last_error,
        )
        view = notice_view(
            "channel.failing",
            channel=state.channel,
            since=format_time(since, self._tz),
            reason=state.last_error or "",
        )
        return f"channel-failing:{state.channel}:{_stamp(since)}", view

    def _recovered(self, channel: str, since: datetime) -> tuple[str, View]:
        log.info("channel %s: delivering again", channel)
        view = notice_view("channel.recovered", channel=channel, since=format_time(since, self._tz))
        return f"channel-recovered:{channel}:{_stamp(since)}", view


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
