"""The Matrix sync runs on the leader only (issue 21): an instance that stops leading stops
syncing at once, and one that comes to lead goes on from the sync token stored in the
database, so what was said meanwhile is acted on, once. Against a real Synapse."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.doubles.matrix_world import eventually, matrix_world, synced
from tests.doubles.synapse import SynapseServer

QUIET_S = 3.0  # long enough for a sync to have answered, were one running


async def test_a_follower_does_not_sync_and_a_new_leader_takes_up_from_the_stored_token(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        await synced(app)
        room = world.rooms["coordination"]
        before = len(await world.bot_messages(room))

        app.leadership.set(False)  # another instance leads now
        await asyncio.sleep(0.5)  # the sync in flight is dropped
        await world.say("duty", room, "!status")
        await asyncio.sleep(QUIET_S)
        assert len(await world.bot_messages(room)) == before  # nobody here answers

        app.leadership.set(True)  # leading (again): from the token the last leader stored

        async def answered() -> list[object] | None:
            found = await world.bot_messages(room)
            return found if len(found) > before else None

        await eventually(answered)
        await asyncio.sleep(QUIET_S)
        assert len(await world.bot_messages(room)) == before + 1  # answered once
