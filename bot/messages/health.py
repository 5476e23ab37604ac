"""Channel health: when each channel last received something, and whether its deliveries
fail and since when. Transport-neutral: fed at the two generic points every channel passes
(intake's receive hook for what comes in, the outbox worker's outcomes for what goes out), so
a new channel (VK, e-mail) is watched without code of its own. Kept in memory: it says how
this run of the bot sees its channels. Read by /metrics (handlers/metrics.py), /status
(bot/chat/answers.py) and the notice in the coordination chat (bot/reports/channels.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = ["API_FAMILY", "ChannelHealth", "ChannelState", "source_family"]

API_FAMILY = "api"  # every configured API source: one channel, the HTTP API
MAX_REASON = 200


def source_family(source: str, api_sources: Collection[str] = ()) -> str:
    """The channel a mention's source belongs to: "rss:news" is rss, "telegram" and
    "telegram_dm" are themselves, and every configured API source (named by the
    organisation: "monitoring") is the API."""
    if source in api_sources:
        return API_FAMILY
    return source.partition(":")[0] or source


@dataclass(frozen=True, slots=True)
class ChannelState:
    channel: str
    last_received_at: datetime | None = None  # a mention came in
    last_delivered_at: datetime | None = None  # the outbox delivered a message through it
    failing_since: datetime | None = None  # the first failure since the last delivery
    last_error: str | None = None  # the latest failure's reason while failing

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failing_for(self, now: datetime) -> float | None:
        """Seconds it has been failing; None while it works."""
        if self.failing_since is None:
            return None
        return max(0.0, (now - self.failing_since).total_seconds())


class ChannelHealth:
    def __init__(self, api_sources: Iterable[str] = ()) -> None:
        self._api_sources = frozenset(api_sources)
        self._states: dict[str, ChannelState] = {}

    def _state(self, channel: str) -> ChannelState:
        return self._states.get(channel) or ChannelState(channel)

    def received(self, source: str, now: datetime) -> None:
        """A mention of `source` came in."""
        channel = source_family(source, self._api_sources)
        self._states[channel] = replace(self._state(channel), last_received_at=now)

    def delivered(self, transport: str, now: datetime) -> None:
        """The outbox delivered through `transport`: whatever failed before has recovered."""
        self._states[transport] = replace(
            self._state(transport), last_delivered_at=now, failing_since=None, last_error=None
        )

    def failed(self, transport: str, now: datetime, reason: str, permanent: bool = False) -> None:
        """A delivery through `transport` failed. Only one to be retried (the network, the
        server, a rate limit) says the channel is in trouble: a message refused for good (a
        deleted comment, a bad request) is that message's fault, told under its card, and
        would otherwise raise a channel alarm after 15 minutes with nothing to send."""
        if permanent:
            return
        state = self._state(transport)
        self._states[transport] = replace(
            state, failing_since=state.failing_since or now, last_error=reason[:MAX_REASON]
        )

    def states(self) -> list[ChannelState]:
        """Every channel seen in this run, by name."""
        return [self._states[name] for name in sorted(self._states)]
