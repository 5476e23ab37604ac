"""The Matrix side of a running Otklik: a matrix-nio sync loop, reactions and commands in,
rendered views out through the outbox (handlers/matrix/transport.py).

The sync token lives in the database: a restart neither replays old commands nor misses new
ones. The bot joins only the rooms the config names and declines every other invite. Rights
come from the config's staff list, never from power levels (room version 12 gives creators
power without listing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nio import AsyncClient, AsyncClientConfig, JoinError, SyncError, SyncResponse

from bot.cases.lifecycle import ActionRequest, DomainError, NoRight
from bot.cases.rights import Actor
from bot.cases.service import ActResult, CaseService
from bot.chat.answers import Answers, case_number
from bot.chat.texts import Texts
from bot.chat.views import MENU_ACTIONS, View, choice_request, notice_view
from bot.model import MAX_DRAFT_TEXT, Action
from bot.settings.config import Config
from bot.settings.connections import MatrixConfig
from bot.settings.directory import Destination, Directory
from handlers.matrix.reactions import (
    ACTION_OF_CARD_REACTION,
    ACTION_OF_DRAFT_REACTION,
    DRAFT_PREFIXES,
    NOTE_PREFIXES,
    PUBLISHED_PREFIXES,
)
from handlers.matrix.render import MatrixRenderer
from handlers.matrix.transport import DELIVERY_CLIENT_CONFIG, MatrixTransport

log = logging.getLogger(__name__)

TRANSPORT = "matrix"
SYNC_TIMEOUT_MS = 30_000
COMMAND_PREFIXES = ("!", "/")
MAX_COMMAND = 2_000
REF_WAIT_STEPS, REF_WAIT_STEP_S = 30, 0.1


class MatrixAdapter:
    def __init__(self, config: Config, texts: Texts) -> None:
        matrix = config.matrix
        assert matrix is not None and matrix.enabled
        # Two clients on one account and device: the sync loop's, which may wait and retry,
        # and the outbox's, which must see every 429 and timeout so the worker can honour
        # retry_after_ms and keep order per room.
        self.client = self._client(
            matrix, AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
        )
        self._sender = self._client(matrix, DELIVERY_CLIENT_CONFIG)
        self.transport = MatrixTransport(self._sender, MatrixRenderer(texts))
        self._rooms = _configured_rooms(config)
        self._texts = texts
        self._since_key = f"matrix.since:{matrix.user_id}"
        self._task: asyncio.Task[None] | None = None
        self._cases: CaseService | None = None
        self._directory: Directory | None = None
        self._answers: Answers | None = None
        self.synced = asyncio.Event()  # set after the first sync: for tests and health

    @staticmethod
    def _client(matrix: MatrixConfig, config: AsyncClientConfig) -> AsyncClient:
        client = AsyncClient(
            matrix.homeserver, matrix.user_id, device_id=matrix.device_id or None, config=config
        )
        client.access_token = matrix.access_token
        client.user_id = matrix.user_id
        return client

    async def start(self, cases: CaseService, directory: Directory, answers: Answers) -> None:
        self._cases, self._directory, self._answers = cases, directory, answers
        since = await cases.recall(self._since_key)
        for room_id in self._rooms:
            joined = await self.client.join(room_id)
            if isinstance(joined, JoinError):
                log.warning("matrix: cannot join %s: %s", room_id, joined.message)
        self._task = asyncio.create_task(self._sync_forever(since), name="matrix-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()
        await self._sender.close()

    async def _sync_forever(self, since: str | None) -> None:
        first = True
        while True:
            try:
                response = await self.client.sync(
                    timeout=0 if first else SYNC_TIMEOUT_MS, since=since, full_state=first
                )
            except (TimeoutError, OSError) as error:
                log.warning("matrix: sync failed (%s); retrying", error)
                await asyncio.sleep(2)
                continue
            if isinstance(response, SyncError):
                log.warning("matrix: sync error %s; retrying", response.message)
                await asyncio.sleep(2)
                continue
            if since is not None:  # a first start has no history to act on: only take a token
                await self._handle(response)
            if first:
                self._warn_encrypted()
            since = response.next_batch
            assert self._cases is not None
            await self._cases.remember(self._since_key, since)
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

    async def _handle(self, response: SyncResponse) -> None:
        for room_id in response.rooms.invite:
            if room_id in self._rooms:
                await self.client.join(room_id)
            else:
                await self.client.room_leave(room_id)  # declines the invite
        for room_id, room in response.rooms.join.items():
            if room_id not in self._rooms:
                continue
            for event in room.timeline.events:
                source: dict[str, Any] = getattr(event, "source", {}) or {}
                if source.get("sender") == self.client.user_id:
                    continue
                try:
                    await self._dispatch(room_id, source)
                except Exception:  # one bad event must not stop the sync loop
                    log.exception("matrix: failed to handle %s", source.get("event_id"))

    async def _dispatch(self, room_id: str, event: dict[str, Any]) -> None:
        content = event.get("content") or {}
        relation = content.get("m.relates_to") or {}
        if event.get("type") == "m.reaction" and relation.get("rel_type") == "m.annotation":
            await self._on_reaction(room_id, event, relation)
        elif event.get("type") == "m.room.message" and relation.get("rel_type") != "m.replace":
            # Edits (m.replace) are ignored: nobody changes a card or a draft by editing.
            await self._on_message(room_id, event, content, relation)

    # --- reactions: buttons -----------------------------------------------------------

    async def _on_reaction(
        self, room_id: str, event: dict[str, Any], relation: dict[str, Any]
    ) -> None:
        cases, directory = self._services()
        ref = await self._ref(room_id, str(relation.get("event_id")))
        key = str(relation.get("key", ""))
        if ref is None:
            return
        actor = directory.by_matrix(str(event.get("sender")))
        kind, case_id = _parse_ref(ref)
        if case_id is None:
            return
        where = Destination(TRANSPORT, room_id)
        card_event = str(relation.get("event_id"))
        if kind == "draft":
            action = ACTION_OF_DRAFT_REACTION.get(key)
            if action is Action.REQUEST_CHANGES:
                # The note comes as "!note …" in the thread; check the right now, act then.
                check, _ = await cases.menu_choices(case_id, Action.REQUEST_CHANGES, actor)
                view = (
                    self._error(check.error)
                    if check.error
                    else notice_view("ui.matrix_note", case_id=case_id)
                )
                await self._say(where, view, event, thread_root=card_event)
                return
            if action is not None:
                await self._act(where, event, case_id, ActionRequest(action), actor, None)
            return
        if kind != "card":
            return
        action = ACTION_OF_CARD_REACTION.get(key)
        if action is None:
            return
        if action in MENU_ACTIONS:
            await self._open_menu(where, event, case_id, action, actor, card_event)
            return
        await self._act(where, event, case_id, ActionRequest(action), actor, card_event)

    async def _open_menu(
        self,
        where: Destination,
        event: dict[str, Any],
        case_id: int,
        menu: Action,
        actor: Actor,
        card_event: str,
    ) -> None:
        cases, _ = self._services()
        check, options = await cases.menu_choices(case_id, menu, actor)
        if check.error is not None:
            await self._say(where, self._error(check.error), event, thread_root=card_event)
            return
        lines = [
            f"{n}. {opt.get('label') or self._texts.t(opt['label_key'])}"
            for n, opt in enumerate(options, 1)
        ]
        await cases.remember(
            _menu_key(where.chat, case_id), json.dumps({"action": menu.value, "options": options})
        )
        view = notice_view("ui.matrix_menu", case_id=case_id, choices="\n".join(lines))
        await self._say(where, view, event, thread_root=card_event)

    # --- messages: commands, drafts, choices ------------------------------------------

    async def _on_message(
        self,
        room_id: str,
        event: dict[str, Any],
        content: dict[str, Any],
        relation: dict[str, Any],
    ) -> None:
        cases, directory = self._services()
        body = str(content.get("body") or "").strip()[: MAX_DRAFT_TEXT + MAX_COMMAND]
        if not body:
            return
        actor = directory.by_matrix(str(event.get("sender")))
        where = Destination(TRANSPORT, room_id)
        root = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
        case_id = None
        if root:
            ref = await cases.ref_of(TRANSPORT, room_id, str(root))
            kind, case_id = _parse_ref(ref) if ref else (None, None)
            if kind != "card":
                case_id = None
        if case_id is not None and await self._in_thread(
            where, event, case_id, body, actor, str(root)
        ):
            return
        if body.startswith(COMMAND_PREFIXES):
            await self._command(where, event, body, actor, case_id, root)

    async def _in_thread(
        self,
        where: Destination,
        event: dict[str, Any],
        case_id: int,
        body: str,
        actor: Actor,
        root: str,
    ) -> bool:
        """Work written in a card's thread. True when the message was for the bot."""
        cases, _ = self._services()
        word, _, rest = body.partition(" ")
        word = "!" + word[1:].lower() if word.startswith("/") else word.lower()
        rest = rest.strip()
        request = None
        if body.isdigit():
            pending = await cases.recall(_menu_key(where.chat, case_id))
            if pending is None:
                return False
            request = _menu_request(json.loads(pending), int(body))
            if request is None:
                await self._say(
                    where,
                    notice_view("error.invalid_input", field="choice", limit=None),
                    event,
                    thread_root=root,
                )
                return True
            await cases.remember(_menu_key(where.chat, case_id), "null")
        elif word in DRAFT_PREFIXES:
            request = ActionRequest(Action.DRAFT, text=rest)
        elif word in NOTE_PREFIXES:
            request = ActionRequest(Action.REQUEST_CHANGES, note=rest)
        elif word in PUBLISHED_PREFIXES:
            request = ActionRequest(Action.MARK_PUBLISHED, url=rest or None)
        elif word == "!escalate":
            request = ActionRequest(Action.ESCALATE, note=rest or None)
        if request is None:
            return False
        await self._act(where, event, case_id, request, actor, root)
        return True

    async def _command(
        self,
        where: Destination,
        event: dict[str, Any],
        body: str,
        actor: Actor,
        thread_case: int | None,
        root: str | None,
    ) -> None:
        _, directory = self._services()
        answers = self._answers
        assert answers is not None
        word, _, args = body[1:].partition(" ")
        word, args = word.lower(), args.strip()
        view: View | None = None
        if word == "help":
            view = answers.help()
        elif word == "duty":
            view = answers.duty()
        elif word == "whoami":
            view = answers.whoami(actor)
        elif word == "status":
            department = directory.department_at(TRANSPORT, where.chat)
            view = await answers.status(actor, department, private=False)
        elif word == "digest":
            view = await answers.digest(actor)
        elif word == "case":
            first = args.split(maxsplit=1)
            view = await answers.case(actor, case_number(first[0] if first else None))
        elif word == "merge":
            words = args.split()
            keep, gone = (case_number(w) for w in ([*words, "", ""])[:2])
            view = await answers.merge(actor, keep, gone)
        elif word == "escalate":
            first, _, rest = args.partition(" ")
            case_id, reason = case_number(first), rest.strip()
            if case_id is None and thread_case is not None:
                case_id, reason = thread_case, args
            view = await answers.escalate(actor, case_id, reason)
        if view is not None:
            await self._say(where, view, event, thread_root=root)

    # --- helpers ------------------------------------------------------------------------

    async def _act(
        self,
        where: Destination,
        event: dict[str, Any],
        case_id: int,
        request: ActionRequest,
        actor: Actor,
        thread_root: str | None,
    ) -> None:
        cases, _ = self._services()
        result: ActResult = await cases.act(case_id, request, actor)
        if result.error is not None:
            await self._say(where, self._error(result.error), event, thread_root=thread_root)
        elif request.action is Action.DRAFT and result.case and result.case.latest_draft:
            view = notice_view(
                "ui.draft_sent", case_id=case_id, version=result.case.latest_draft.version
            )
            await self._say(where, view, event, thread_root=thread_root)

    async def _ref(self, room_id: str, event_id: str) -> str | None:
        """Our key for a message of ours. Its reactions are added before the outbox records
        the message's id, so a quick press may arrive first: wait for it briefly then."""
        cases, _ = self._services()
        for _ in range(REF_WAIT_STEPS):
            ref = await cases.ref_of(TRANSPORT, room_id, event_id)
            if ref is not None or not await cases.chat_busy(TRANSPORT, room_id):
                return ref
            await asyncio.sleep(REF_WAIT_STEP_S)
        return None

    def _error(self, error: DomainError) -> View:
        if isinstance(error, NoRight):
            return notice_view("ui.no_rights")
        return notice_view(f"error.{error.code}", **error.params)

    async def _say(
        self, where: Destination, view: View, event: dict[str, Any], thread_root: str | None
    ) -> None:
        """Answer through the outbox, keyed by the event so a replayed event says nothing
        twice; in the card's thread when there is one."""
        cases, _ = self._services()
        await cases.send(
            where, view, key=f"answer:{event.get('event_id')}", reply_to_message=thread_root
        )

    def _services(self) -> tuple[CaseService, Directory]:
        assert self._cases is not None and self._directory is not None
        return self._cases, self._directory


def _configured_rooms(config: Config) -> set[str]:
    rooms = {d.matrix.room_id for d in config.departments if d.matrix is not None}
    rooms.update(config.digest.recipients.matrix_room_ids)
    return rooms


def _parse_ref(ref: str) -> tuple[str | None, int | None]:
    parts = ref.split(":")
    if len(parts) >= 2 and parts[0] in ("card", "draft") and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


def _menu_key(room_id: str, case_id: int) -> str:
    return f"matrix.menu:{room_id}:{case_id}"


def _menu_request(pending: dict[str, Any] | None, number: int) -> ActionRequest | None:
    """The action a numbered choice stands for."""
    if not pending:
        return None
    options = pending.get("options") or []
    if not 1 <= number <= len(options):
        return None
    option = options[number - 1]
    return choice_request(Action(option.get("action") or pending["action"]), str(option["arg"]))
    return None
