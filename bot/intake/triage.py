"""The triage list: uncertain mentions are never dropped silently. Those the model could not
call (Sentiment.UNCERTAIN) that opened no case and that staff have not decided wait on one
message in the coordination chat of every transport, kept up to date by editing it, as the
backlog "queue" message is (bot/messages/delivery.py). Each line offers "Это негатив → кейс"
(the /negative path: CaseService.promote, a card in the department's chat) and "Не негатив"
(CaseService.dismiss: neutral, with staff provenance). bot/chat/inbound.py brings the presses.

Which sources: every one except those configured `triage: false` (bot/settings/config.py
Config.triage_skipped_sources), so the organisation's own channels are always listed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Sequence

from bot.cases.corrections import Dismissal, Promotion
from bot.cases.lifecycle import DomainError
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.messages.outbox import Destination, OutboxItem, OutboxOp
from bot.messages.views import TriageLine, TriageView, triage_view
from bot.model import Mention
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.staff.rights import Actor

log = logging.getLogger(__name__)

TRIAGE_REF = "triage"
TRIAGE_LISTED = 20  # lines shown; the rest is "… and N more"
LINE_TEXT = 120  # characters of a mention's text: 20 lines stay within a Telegram message
TRIAGE_URGENCY = 5  # after answers to commands (10), before queued cards (0-3)


def triage_ref(department: str) -> str:
    """The logical key of the triage message in a department's (the coordination) chat."""
    return f"{TRIAGE_REF}:{department}"


class TriageBoard:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        cases: CaseService,
        intake: MentionIntake,
        department: str,
        destinations: Callable[[], Sequence[Destination]],
        skip_sources: Collection[str] = frozenset(),
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._cases = cases
        self._intake = intake
        self._department = department  # the coordination department
        self._destinations = destinations
        self._skip = frozenset(skip_sources)
        self._on_outbox = on_outbox
        self._lock = asyncio.Lock()  # one refresh at a time: the last one shows the latest
        self._pending: asyncio.Task[None] | None = None
        self._dirty = False

    # --- decisions --------------------------------------------------------------------

    async def promote(
        self, mention_id: int | None, url: str | None, actor: Actor
    ) -> Promotion | DomainError | None:
        """ "Это негатив → кейс" and /negative <id or link>: the mention opens (or names) its
        case as intake would (MentionIntake.promote); the list follows."""
        result = await self._intake.promote(mention_id, url, actor)
        if not isinstance(result, DomainError) and result is not None:
            await self.refresh()
        return result

    async def dismiss(self, mention_id: int, actor: Actor) -> Dismissal | DomainError | None:
        """ "Не негатив": the mention is neutral, as staff say; the list follows."""
        result = await self._cases.dismiss(mention_id, actor)
        if not isinstance(result, DomainError) and result is not None:
            await self.refresh()
        return result

    # --- the message ------------------------------------------------------------------

    def poke(self) -> None:
        """A mention may have joined the list: refresh soon, once for a burst of them."""
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._refresh_while_dirty(), name="triage")

    async def _refresh_while_dirty(self) -> None:
        while self._dirty:  # a mention stored during a refresh gets one more
            self._dirty = False
            try:
                await self.refresh()
            except Exception:  # intake must not fail for the list; the next change retries
                log.exception("triage: the list could not be refreshed")

    async def refresh(self) -> int:
        """Edit the list in every coordination chat where it changed (posted the first time,
        never posted while it is empty). Returns how many messages were queued."""
        async with self._lock, self._uow() as uow:
            mentions, total = await uow.mentions.undecided(self._skip, TRIAGE_LISTED)
            view = triage_view([_line(m) for m in mentions], max(0, total - len(mentions)))
            queued = 0
            for where in self._destinations():
                queued += await self._show(uow, where, view)
            await uow.commit()
        if queued:
            self._on_outbox()
        return queued

    async def _show(self, uow: UnitOfWork, where: Destination, view: TriageView) -> int:
        ref = triage_ref(self._department)
        shown_key = f"{where.transport}.triage:{where.chat}"
        fingerprint = json.dumps(view, sort_keys=True, ensure_ascii=False)
        shown = await uow.kv.get(shown_key)
        if shown == fingerprint or (shown is None and not view["items"]):
            return 0
        await uow.kv.set(shown_key, fingerprint)
        now = self._clock.now()
        return await uow.outbox.enqueue(
            [
                OutboxItem(
                    transport=where.transport,
                    chat=where.chat,
                    thread=where.thread,
                    op=OutboxOp.EDIT,  # a post while there is no triage message yet
                    payload=view,
                    ref_key=ref,
                    idempotency_key=f"{where.transport}:{where.chat}:{ref}:{now.isoformat()}",
                    urgency=TRIAGE_URGENCY,
                    created_at=now,
                )
            ]
        )

    async def stop(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)


def _line(mention: Mention) -> TriageLine:
    assert mention.id is not None
    text = " ".join(mention.text.split())
    if len(text) > LINE_TEXT:
        text = text[: LINE_TEXT - 1].rstrip() + "…"
    return {
        "mention_id": mention.id,
        "source": mention.source,
        "author": mention.author.display_name or mention.author.external_id,
        "text": text,
        "url": mention.url,
    }
