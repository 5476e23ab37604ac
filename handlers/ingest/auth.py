"""Who is calling the HTTP API: bearer tokens of the configured sources, and a limit on
failed attempts per client address so tokens cannot be guessed at speed.

api.py asks `Gate.admit` first on every authenticated route.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.settings.connections import ApiSource

log = logging.getLogger("otklik.api")

FAILURES_PER_WINDOW = 10
WINDOW = timedelta(minutes=1)
# Addresses remembered at most; beyond it the longest-quiet ones are forgotten first.
MAX_ADDRESSES = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401, 403 or 429
    reason: str
    retry_after_s: int | None = None


class FailedAttempts:
    """Failed authentications per client address in a sliding window (injected clock)."""

    def __init__(
        self,
        clock: Clock,
        limit: int = FAILURES_PER_WINDOW,
        window: timedelta = WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[datetime]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again; None: it may try now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self._limit:
            return None
        wait = failures[0] + self._window - self._clock.now()
        return max(1, math.ceil(wait.total_seconds()))

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= self._max_addresses:
                self._forget_quiet()
            failures = self._failures[address] = deque(maxlen=self._limit)
        else:
            # Moved to the end: dict order is then the order of last failure.
            self._failures[address] = self._failures.pop(address)
        failures.append(self._clock.now())

    def _recent(self, address: str) -> deque[datetime] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        since = self._clock.now() - self._window
        while failures and failures[0] <= since:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def _forget_quiet(self) -> None:
        for address in list(self._failures)[: max(1, self._max_addresses // 10)]:
            del self._failures[address]


class Gate:
    """Bearer tokens of the enabled sources; failures limited and logged (never the token)."""

    def __init__(self, sources: Sequence[ApiSource], clock: Clock) -> None:
        self._sources = [(s, s.token.encode()) for s in sources if s.enabled]
        self._attempts = FailedAttempts(clock)

    def admit(self, address: str, authorization: str, scope: str) -> ApiSource | Refusal:
        wait = self._attempts.retry_after(address)
        if wait is not None:
            return Refusal(429, "too many failed authentications; retry later", wait)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Refusal(401, "missing bearer token")
        # Header bytes that are not UTF-8 arrive as surrogates: compare them as sent.
        offered = token.strip().encode("utf-8", "surrogateescape")
        found = None
        for source, expected in self._sources:  # compare with every token: timing says nothing
            if hmac.compare_digest(expected, offered):
                found = source
        if found is None:
            self._attempts.failed(address)
            log.warning("api: authentication failed from %s: unknown token", address)
            return Refusal(401, "unknown token")
        if scope not in found.scopes:
            return Refusal(403, f"token of source {found.name!r} lacks scope {scope!r}")
        return found
