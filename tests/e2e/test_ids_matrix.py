"""Ids without guesswork in Matrix (issue 17, point 3), against a real Synapse: /ids in a
room and in a thread, and the start-up check of every department room."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer


async def test_ids_in_a_room_and_a_thread_and_the_rooms_seen(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        room = world.rooms["housing"]
        spec = world.users["spec"].user_id
        root = await world.say("spec", room, "Вопрос по настройке")
        await world.say("spec", room, "!ids", thread=root)

        async def answered() -> str | None:
            for event in await world.thread(room, root):
                body = event["content"].get("body", "")
                if event["sender"] == world.bot.user_id and "room_id" in body:
                    return str(body)
            return None

        text = await eventually(answered)
        assert f"Комната (room_id): {room}" in text
        assert f"Ветка: {root}" in text and f"Ваш matrix_id: {spec}" in text

        # A stranger in a work room: the usual refusal, no ids.
        await world.say("stranger", room, "/whoami")

        async def refused() -> bool:
            return any(
                "нет в списке" in e["content"].get("body", "")
                for e in await world.bot_messages(room)
            )

        await eventually(refused)
        assert not any(
            world.users["stranger"].user_id in e["content"].get("body", "")
            for e in await world.bot_messages(room)
        )

        await world.app.chats.drain()
        seen = {c.chat: c for c in await world.app.chats.all()}
        assert seen[room].transport == "matrix" and seen[room].title == "ЖКХ"


async def test_the_start_up_check_names_rooms_not_joined_and_without_the_power_to_post(
    synapse: SynapseServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        owner = world.users["duty"]
        await world.stop_bot()
        # Housing: a room the bot was never invited to. Transport: posting needs level 50.
        world.rooms["housing"] = synapse.create_room(owner.access_token, "Новая ЖКХ")
        transport = world.rooms["transport"]
        path = f"/_matrix/client/v3/rooms/{quote(transport)}/state/m.room.power_levels/"
        levels = synapse.request("GET", path, token=owner.access_token)
        levels["events_default"] = 50
        synapse.request("PUT", path, token=owner.access_token, body=levels)
        coordination = world.rooms["coordination"]
        before = len(await world.bot_messages(coordination))
        with caplog.at_level(logging.WARNING, logger="bot.chat.checks"):
            await world.start_bot()

            async def reported() -> str | None:
                found = (await world.bot_messages(coordination))[before:]
                return str(found[0]["content"]["body"]) if found else None

            text = await eventually(reported)
        assert "При запуске Отклик проверил чаты отделов в Matrix" in text
        assert "departments[0].matrix" in text and "не вошёл в комнату" in text
        assert "departments[1].matrix" in text and "0/50" in text
        assert "departments[2]" not in text
        warnings = [r.getMessage() for r in caplog.records if r.name == "bot.chat.checks"]
        assert len(warnings) == 2, warnings
        assert len((await world.bot_messages(coordination))[before:]) == 1
