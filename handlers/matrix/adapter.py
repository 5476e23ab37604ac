"""The Matrix side of a running Otklik: a matrix-nio sync loop in, rendered views out through
the outbox (handlers/matrix/transport.py). Each event goes to the handler of its kind:
reactions.py (buttons, a crisis card's numbers), replies.py (work in a card's thread),
commands.py; they translate it
into an inbound event for bot/chat/inbound.py.

The sync token lives in the database: a restart neither replays old commands nor misses new
ones. The bot joins the rooms the config names, and a private room when configured staff
invite it (commands there answer as in a private chat); it declines every other invite. Rights
come from the config's staff list, never from power levels (room version 12 gives creators
power without listing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nio import AsyncClient, AsyncClientConfig, JoinError, SyncError, SyncResponse

from bot.chat.checks import ChatProblems, configured_chats
from bot.chat.inbound import ChatServices
from bot.chat.seen import ChatLog
from bot.leadership import Leadership
from bot.messages.texts import Texts
from bot.messages.views import RefKind
from bot.model import MAX_DRAFT_TEXT
from bot.settings.config import Config
from bot.settings.connections import MatrixConfig
from bot.staff.directory import Directory
from handlers.matrix import commands, reactions, replies
from handlers.matrix.checks import check_rooms
from handlers.matrix.commands import MAX_COMMAND
from handlers.matrix.context import TRANSPORT, Event, MatrixContext
from handlers.matrix.limits import MatrixLimits, MatrixPacer
from handlers.matrix.render import MatrixRenderer
from handlers.matrix.transport import DELIVERY_CLIENT_CONFIG, MatrixTransport

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
# Events per room in one sync. The server's default (10) drops the rest of a busy moment, a
# card with its reactions is already 7: commands would be missed, and the card edits that
# say which version a room shows (shown.py).
SYNC_FILTER = {"room": {"timeline": {"limit": 200}}}


class MatrixAdapter:
    """A bot.chat.inbound.ChatAdapter: the sync loop in, MatrixTransport out."""

    name = TRANSPORT

    def __init__(self, config: Config, texts: Texts, leadership: Leadership | None = None) -> None:
        matrix = config.matrix
        assert matrix is not None and matrix.enabled
        # Two clients on one account and device: the sync loop's, which may wait and retry,
        # and the outbox's, which must see every 429 and timeout so the worker can honour
        # retry_after_ms and keep order per room.
        self.client = self._client(
            matrix, AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
        )
        self._sender = self._client(matrix, DELIVERY_CLIENT_CONFIG)
        limits = MatrixLimits(matrix.rate_limit.per_second, matrix.rate_limit.burst)
        self.transport = MatrixTransport(self._sender, MatrixRenderer(texts), MatrixPacer(limits))
        self._rooms = _configured_rooms(config)
        self._department_rooms = configured_chats(config, TRANSPORT)  # checked at start
        self._problems: ChatProblems | None = None
        self._directory: Directory | None = None  # who is staff: private rooms and invites
        self._chats: ChatLog | None = None
        self._since_key = f"matrix.since:{matrix.user_id}"
        self._task: asyncio.Task[None] | None = None
        # Several instances: only the leader syncs (each would act on every event).
        self._leadership = leadership or Leadership()
        self.synced = asyncio.Event()  # set after the first sync: for tests and health

    @staticmethod
    def _client(matrix: MatrixConfig, config: AsyncClientConfig) -> AsyncClient:
        client = AsyncClient(
            matrix.homeserver, matrix.user_id, device_id=matrix.device_id or None, config=config
        )
        client.access_token = matrix.access_token
        client.user_id = matrix.user_id
        return client

    async def start(self, services: ChatServices) -> None:
        ctx = MatrixContext.of(services, self.transport.ref_of_sent)
        self._problems, self._chats = services.problems, services.chats
        self._directory = services.directory
        for room_id in self._rooms:
            # A join is an event like a message: the homeserver's rate limit counts it.
            await self.transport.pacer.acquire(None)
            joined = await self.client.join(room_id)
            if isinstance(joined, JoinError):
                # Joined when the invite comes in through the sync (_answer_invites).
                log.warning("matrix: cannot join %s yet: %s", room_id, joined.message)
        self._task = asyncio.create_task(self._sync_while_leading(ctx), name="matrix-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()
        await self._sender.close()

    async def _sync_while_leading(self, ctx: MatrixContext) -> None:
        """Sync while this instance leads; on losing, stop at once (a sync in flight is
        dropped, its events are the next leader's). On gaining, go on from the token the
        last leader stored."""
        leadership = self._leadership
        while True:
            await leadership.until_leading()
            since = await ctx.cases.recall(self._since_key)
            syncing = asyncio.create_task(self._sync_forever(ctx, since))
            lost = asyncio.create_task(leadership.until_lost())
            try:
                await asyncio.wait({syncing, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (lost, syncing):  # the sync last: a failure of it is raised here
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            log.info("matrix: not leading; sync paused")

    async def _sync_forever(self, ctx: MatrixContext, since: str | None) -> None:
        first = True
        while True:
            try:
                response = await self.client.sync(
                    timeout=0 if first else SYNC_TIMEOUT_MS,
                    sync_filter=SYNC_FILTER,
                    since=since,
                    full_state=first,
                )
            except (TimeoutError, OSError) as error:
                log.warning("matrix: sync failed (%s); retrying", error)
                await asyncio.sleep(2)
                continue
            if isinstance(response, SyncError):
                log.warning("matrix: sync error %s; retrying", response.message)
                await asyncio.sleep(2)
                continue
            # An invite to a configured room is answered even on a first start: the join at
            # start fails while an invite is still on its way, and it arrives here.
            joining = await self._answer_invites(response)
            self._note_rooms(response)
            if since is not None:  # a first start has no history to act on: only take a token
                await self._handle(ctx, response)
            if first:
                self._warn_encrypted()
                if self._problems is not None:
                    problems = check_rooms(self.client, self._department_rooms, joining)
                    await self._problems.report(TRANSPORT, problems)
            since = response.next_batch
            await ctx.cases.remember(self._since_key, since)
            first = False
            self.synced.set()

    def _warn_encrypted(self) -> None:
        for room_id in self._rooms:
            room = self.client.rooms.get(room_id)
            if room is not None and room.encrypted:
                log.warning(
                    "matrix: room %s is encrypted; Otklik needs unencrypted rooms for now "
                    "and will not see messages there",
                    room_id,
                )

    async def _answer_invites(self, response: SyncResponse) -> set[str]:
        """Join the configured rooms invited to, and a private room a configured staff member
        invites the bot to (for !status and !case); decline the rest. The rooms joined."""
        joined_now = set()
        for room_id, invite in response.rooms.invite.items():
            inviter = self._inviter(invite.invite_state)
            await self.transport.pacer.acquire(None)  # joining or declining is an event too
            if room_id in self._rooms or self._is_staff(inviter):
                joined = await self.client.join(room_id)
                if isinstance(joined, JoinError):
                    log.warning("matrix: cannot join %s: %s", room_id, joined.message)
                else:
                    joined_now.add(room_id)
            else:
                log.info("matrix: declined an invite to %s (no configured room)", room_id)
                await self.client.room_leave(room_id)  # declines the invite
        return joined_now

    def _inviter(self, invite_state: list[Any]) -> str | None:
        """Who sent the bot's invite, from the invite's stripped state."""
        for event in invite_state:
            if (
                getattr(event, "state_key", None) == self.client.user_id
                and getattr(event, "membership", None) == "invite"
            ):
                return str(getattr(event, "sender", "") or "") or None
        return None

    def _is_staff(self, user_id: str | None) -> bool:
        return (
            self._directory is not None
            and bool(user_id)
            and (self._directory.by_matrix(str(user_id)).is_staff)
        )

    def _is_private(self, room_id: str) -> bool:
        """A room of the bot's that no department names, where everyone else is configured
        staff: commands are answered there as in a private chat."""
        room = self.client.rooms.get(room_id)
        if room is None or room_id in self._rooms:
            return False
        others = [user for user in room.users if user != self.client.user_id]
        return bool(others) and all(self._is_staff(user) for user in others)

    def _note_rooms(self, response: SyncResponse) -> None:
        """The rooms events came from, for `otklik chats` and the DEBUG log."""
        for room_id, room in response.rooms.join.items():
            if not room.timeline.events:
                continue
            known = self.client.rooms.get(room_id)
            name = known.display_name if known is not None else ""
            log.debug(
                "matrix: %d events from room %s «%s»", len(room.timeline.events), room_id, name
            )
            # Only the configured rooms: a private room's id is nobody's business.
            if self._chats is not None and room_id in self._rooms:
                self._chats.saw(TRANSPORT, room_id, name, "room")

    async def _handle(self, ctx: MatrixContext, response: SyncResponse) -> None:
        for room_id, room in response.rooms.join.items():
            if room_id not in self._rooms:
                # A private room with staff (joined on their invite): commands only. Should
                # anyone else be in it, they are ignored and audited as in any chat that is
                # no work chat.
                private = self._is_private(room_id)
                await self._handle_commands(ctx, room_id, room.timeline.events, private)
                continue
            for event in room.timeline.events:
                source: Event = getattr(event, "source", {}) or {}
                if source.get("sender") == self.client.user_id:
                    # Our own card posts and edits say which card version the room shows.
                    ctx.shown.saw(room_id, source)
                    continue
                try:
                    await self._dispatch(ctx, room_id, source)
                except Exception:  # one bad event must not stop the sync loop
                    log.exception("matrix: failed to handle %s", source.get("event_id"))
        await ctx.shown.save()

    async def _handle_commands(
        self, ctx: MatrixContext, room_id: str, events: list[Any], private: bool
    ) -> None:
        """Commands in a room no department names, as in a private chat with the bot."""
        for event in events:
            source: Event = getattr(event, "source", {}) or {}
            content = source.get("content") or {}
            relation = content.get("m.relates_to") or {}
            if (
                source.get("sender") == self.client.user_id
                or source.get("type") != "m.room.message"
                or relation.get("rel_type") == "m.replace"
            ):
                continue
            body = str(content.get("body") or "").strip()[:MAX_COMMAND]
            try:
                await commands.on_command(ctx, room_id, source, body, None, None, private)
            except Exception:  # one bad event must not stop the sync loop
                log.exception("matrix: failed to handle %s", source.get("event_id"))

    async def _dispatch(self, ctx: MatrixContext, room_id: str, event: Event) -> None:
        content = event.get("content") or {}
        relation = content.get("m.relates_to") or {}
        if event.get("type") == "m.reaction" and relation.get("rel_type") == "m.annotation":
            await reactions.on_reaction(ctx, room_id, event, relation)
        elif event.get("type") == "m.room.message" and relation.get("rel_type") != "m.replace":
            # Edits (m.replace) are ignored: nobody changes a card or a draft by editing.
            await self._on_message(ctx, room_id, event, content, relation)

    async def _on_message(
        self, ctx: MatrixContext, room_id: str, event: Event, content: Event, relation: Event
    ) -> None:
        body = str(content.get("body") or "").strip()[: MAX_DRAFT_TEXT + MAX_COMMAND]
        if not body:
            return
        root = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
        about = await ctx.our_message(room_id, str(root)) if root else None
        # Work in a card's thread first; what is not (a command, or chat) goes on.
        if (
            root is not None
            and about is not None
            and about.kind is RefKind.CRISIS
            and await replies.on_crisis_thread_message(
                ctx, room_id, event, body, about.case_id, str(root)
            )
        ):
            return
        # A draft posted on its own (a later approval tier's copy in the coordination room)
        # has a thread of its own, where "!note" and "!reject" are written.
        if (
            root is not None
            and about is not None
            and about.kind in (RefKind.CARD, RefKind.DRAFT)
            and await replies.on_thread_message(ctx, room_id, event, body, about, str(root))
        ):
            return
        await commands.on_command(ctx, room_id, event, body, about, root)


def _configured_rooms(config: Config) -> set[str]:
    rooms = {d.matrix.room_id for d in config.departments if d.matrix is not None}
    rooms.update(config.digest.recipients.matrix_room_ids)
    return rooms
