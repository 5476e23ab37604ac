"""Updates and long polling: getUpdates (offset confirmation, allowed_updates, 409 on a
competing poll or while a webhook is set). Updates are queued by core.py's fan-out.

Next: webhooks.py, setWebhook and delivery by POST.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.protocol import ApiError, json_arg, to_int
from tests.doubles.telegram_server.state import BotState

WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)


class UpdateApi(ServerCore):
    """getUpdates with long polling."""

    # ---- updates ------------------------------------------------------------------------

    async def _api_getUpdates(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, Any]]:
        offset = to_int(params.get("offset"))
        limit = min(max(to_int(params.get("limit"), 100), 1), 100)
        timeout = min(max(to_int(params.get("timeout")), 0), 50)
        if "allowed_updates" in params and params["allowed_updates"] != "":
            allowed = json_arg(params["allowed_updates"], "allowed updates")
            if isinstance(allowed, list):
                state.allowed_updates = frozenset(str(a) for a in allowed) or None
        if state.webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE)
        state.poll_generation += 1
        generation = state.poll_generation
        self._touch()  # an older poll of this bot ends with 409
        if offset < 0:
            state.updates = state.updates[offset:]
        elif offset > 0:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        announced = False
        state.polls_waiting += 1
        try:
            while True:
                if state.webhook is not None:
                    raise ApiError(409, WEBHOOK_ACTIVE)
                if state.poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only "
                        "one bot instance is running",
                    )
                remaining = deadline - loop.time()
                if state.updates or remaining <= 0 or self._closing:
                    return state.updates[:limit]
                if not announced:  # once, so that tests can wait for the poll to be in flight
                    announced = True
                    self._touch()
                event = self._changed  # no await since the checks: no change can be missed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            state.polls_waiting -= 1
