"""The real-Synapse fixture works the way the Matrix adapter tests will use it (nio as people)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomGetStateEventResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendError,
    RoomSendResponse,
    SyncResponse,
)
from nio.api import RelationshipType

from tests.doubles.synapse import MatrixUser, SynapseServer

# The flood test starts a server of its own, without the `synapse` fixture that skips.
pytest.importorskip(
    "synapse",
    reason="matrix-synapse is not installed: pip install -e '.[dev]'",
    exc_type=ImportError,
)


def _localpart(prefix: str) -> str:
    # The server lives for the whole session: every test gets users of its own.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def nio_client(
    server: SynapseServer, user: MatrixUser, config: AsyncClientConfig | None = None
) -> AsyncIterator[AsyncClient]:
    """A nio client with a ready token, set up the way the bot does it (no /login)."""
    client = AsyncClient(server.base_url, user.user_id, config=config)
    client.access_token = user.access_token
    client.user_id = user.user_id
    client.device_id = user.device_id
    try:
        yield client
    finally:
        await client.close()


async def _send(client: AsyncClient, room_id: str, event_type: str, content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, event_type, content)
    assert isinstance(resp, RoomSendResponse), resp
    return str(resp.event_id)


def test_server_is_local_and_fast(synapse: SynapseServer) -> None:
    assert synapse.base_url.startswith("http://127.0.0.1:")
    assert synapse.server_name == "otklik.test"
    assert synapse.started_in_s is not None and synapse.started_in_s < 15
    assert synapse.request("GET", "/_matrix/client/versions")["versions"]


async def test_message_reaction_edit_thread(synapse: SynapseServer) -> None:
    alice = synapse.register(_localpart("alice"))
    bob = synapse.register(_localpart("bob"))
    assert alice.user_id.endswith(":otklik.test") and alice.device_id
    room_id = synapse.create_room(alice.access_token, "cases", invite=[bob.user_id])

    async with nio_client(synapse, alice) as a, nio_client(synapse, bob) as b:
        joined = await b.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        message = {
            "msgtype": "m.text",
            "body": "Negative mention",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>Negative</b> mention",
        }
        msg_id = await _send(b, room_id, "m.room.message", message)

        sync = await a.sync(timeout=0, full_state=True)
        assert isinstance(sync, SyncResponse), sync
        timeline = sync.rooms.join[room_id].timeline.events
        synced = next(e for e in timeline if e.event_id == msg_id)
        assert isinstance(synced, RoomMessageText)
        assert synced.formatted_body == "<b>Negative</b> mention"
        assert synced.sender == bob.user_id

        history = await a.room_messages(room_id, limit=20)
        assert isinstance(history, RoomMessagesResponse), history
        assert msg_id in {e.event_id for e in history.chunk}

        reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": msg_id, "key": "👍"}}
        reaction_id = await _send(a, room_id, "m.reaction", reaction)
        edit = {
            "msgtype": "m.text",
            "body": "* Negative mention (edited)",
            "m.new_content": {"msgtype": "m.text", "body": "Negative mention (edited)"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": msg_id},
        }
        edit_id = await _send(b, room_id, "m.room.message", edit)
        thread_reply = {
            "msgtype": "m.text",
            "body": "Case #1 opened",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": msg_id,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": msg_id},
            },
        }
        thread_id = await _send(a, room_id, "m.room.message", thread_reply)

        # GET /_matrix/client/v1/rooms/{room}/relations/{event}: what Synapse stored.
        related = {
            e.event_id: e.source["content"]["m.relates_to"]["rel_type"]
            async for e in a.room_get_event_relations(room_id, msg_id)
        }
        assert related == {
            reaction_id: "m.annotation",
            edit_id: "m.replace",
            thread_id: "m.thread",
        }
        only_threads = [
            e.event_id
            async for e in a.room_get_event_relations(
                room_id, msg_id, rel_type=RelationshipType.thread
            )
        ]
        assert only_threads == [thread_id]


async def test_room_versions(synapse: SynapseServer) -> None:
    alice = synapse.register(_localpart("alice"))
    # The homeserver's own default (12 on Synapse 1.163): what a department room gets today.
    default_room = synapse.create_room(alice.access_token, "default")
    v11_room = synapse.create_room(alice.access_token, "v11", room_version="11")
    async with nio_client(synapse, alice) as a:
        for room_id, version in ((default_room, "12"), (v11_room, "11")):
            create = await a.room_get_state_event(room_id, "m.room.create")
            assert isinstance(create, RoomGetStateEventResponse), create
            assert create.content.get("room_version") == version
    # Room v12 ids are the hash of the create event: no ":server" part.
    assert ":" not in default_room and v11_room.endswith(":otklik.test")


async def test_encrypted_room_is_reported_by_nio(synapse: SynapseServer) -> None:
    alice = synapse.register(_localpart("alice"))
    bob = synapse.register(_localpart("bob"))
    secret = synapse.create_room(alice.access_token, "e2e", invite=[bob.user_id], encrypted=True)
    plain = synapse.create_room(alice.access_token, "plain", invite=[bob.user_id])
    for room_id in (secret, plain):
        synapse.join(bob.access_token, room_id)
    synapse.send_text(alice.access_token, plain, "hello")
    async with nio_client(synapse, bob) as b:
        sync = await b.sync(timeout=0, full_state=True)
        assert isinstance(sync, SyncResponse), sync
        assert b.rooms[secret].encrypted is True
        assert b.rooms[plain].encrypted is False


async def test_flooding_returns_limit_exceeded(tmp_path: Path) -> None:
    # A server of its own: the session one has rate limits raised out of the way.
    with SynapseServer(
        tmp_path, overrides={"rc_message": {"per_second": 0.5, "burst_count": 2}}
    ) as server:
        carol = server.register(_localpart("carol"))
        room_id = server.create_room(carol.access_token, "flood")
        # nio retries 429s forever by default; the outbox must see them instead.
        config = AsyncClientConfig(max_limit_exceeded=0)
        async with nio_client(server, carol, config) as c:
            error: RoomSendError | None = None
            for n in range(6):
                content = {"msgtype": "m.text", "body": f"flood {n}"}
                resp = await c.room_send(room_id, "m.room.message", content)
                if isinstance(resp, RoomSendError):
                    # Synapse holds every rejected request ~0.5 s: stop at the first one.
                    error = resp
                    break
                assert isinstance(resp, RoomSendResponse), resp
            assert error is not None, "Synapse never rate-limited the flood"
            assert error.status_code == "M_LIMIT_EXCEEDED"
            assert error.retry_after_ms is not None and error.retry_after_ms > 0
    assert not server.running
