"""The VK transport against the VK test server: the methods, the token, the errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.messages.outbox import (
    Delivery,
    OutboxItem,
    OutboxOp,
    PermanentFailure,
    RetryLater,
)
from bot.messages.texts import texts_for
from bot.messages.views import public_reply_view
from bot.settings.connections import VkConfig
from handlers.vk.transport import VkTransport, random_id_of
from tests.doubles.support import ROOT
from tests.doubles.vk_server import VkServer

GROUP = 77
POST = 5
TOKEN = "vk1.a.test0community0token0abcdefghijklmnop"


@pytest.fixture
async def vk() -> AsyncIterator[VkServer]:
    server = VkServer()
    await server.start()
    server.add_token(TOKEN, "group", GROUP)
    server.add_post(GROUP, POST)
    yield server
    await server.stop()


def transport(vk: VkServer, token: str = TOKEN) -> VkTransport:
    config = VkConfig(
        group_id=GROUP, token=token, secret="s", confirmation="c", api_base=vk.api_base
    )
    return VkTransport(config, texts_for(ROOT / "playbooks" / "templates", "ru"))


def delivery(chat: str, reply_to: str | None, key: str = "k1", text: str = "Ответ") -> Delivery:
    item = OutboxItem(
        transport="vk",
        chat=chat,
        op=OutboxOp.REPLY,
        payload=public_reply_view(text),
        idempotency_key=key,
    )
    return Delivery(item=item, reply_to_ref=reply_to)


async def test_a_reply_goes_under_the_comment_from_the_community_once(vk: VkServer) -> None:
    citizen = vk.comment(GROUP, POST, 100, "Нет воды")
    sender = transport(vk)
    try:
        first = await sender.deliver(delivery(f"wall-{GROUP}_{POST}", str(citizen.id)))
        again = await sender.deliver(delivery(f"wall-{GROUP}_{POST}", str(citizen.id)))
    finally:
        await sender.close()
    replies = [c for c in vk.comments(GROUP, POST) if c.from_id == -GROUP]
    assert [(r.text, r.reply_to_comment) for r in replies] == [("Ответ", citizen.id)]
    assert first.external_ref == again.external_ref == str(replies[0].id)  # guid


async def test_a_message_uses_random_id_and_a_resend_is_no_second_message(vk: VkServer) -> None:
    vk.write(GROUP, 100, "Помогите")
    sender = transport(vk)
    try:
        first = await sender.deliver(delivery("peer100", None, key="vk:peer100:publish:1:1"))
        again = await sender.deliver(delivery("peer100", None, key="vk:peer100:publish:1:1"))
        other = await sender.deliver(delivery("peer100", None, key="vk:peer100:publish:1:2"))
    finally:
        await sender.close()
    sent = vk.sent_to(GROUP, 100)
    assert [m.text for m in sent] == ["Ответ", "Ответ"]
    assert first.external_ref == again.external_ref != other.external_ref
    assert sent[0].random_id == random_id_of("vk:peer100:publish:1:1")


async def test_flood_control_and_too_many_requests_are_retried(vk: VkServer) -> None:
    vk.fail_next("wall.createComment", 9, 6)
    sender = transport(vk)
    try:
        with pytest.raises(RetryLater, match="Flood control"):
            await sender.deliver(delivery(f"wall-{GROUP}_{POST}", None))
        with pytest.raises(RetryLater, match="Too many requests per second") as info:
            await sender.deliver(delivery(f"wall-{GROUP}_{POST}", None))
        assert info.value.after == 1.0
        await sender.deliver(delivery(f"wall-{GROUP}_{POST}", None))
    finally:
        await sender.close()
    assert len(vk.comments(GROUP, POST)) == 1


async def test_other_errors_are_final_and_say_why(vk: VkServer) -> None:
    sender = transport(vk)
    try:
        with pytest.raises(PermanentFailure, match=r"901.*не разрешил сообществу писать"):
            await sender.deliver(delivery("peer555", None))  # never wrote to the community
        with pytest.raises(PermanentFailure, match=r"100.*комментарий удалён"):
            await sender.deliver(delivery(f"wall-{GROUP}_{POST}", "999"))
        with pytest.raises(PermanentFailure, match="not community"):
            await sender.deliver(delivery(f"wall-1_{POST}", None))  # another wall
    finally:
        await sender.close()
    revoked = transport(vk, token="vk1.a.revoked0token0abcdefghijklmnopqrstu")
    try:
        with pytest.raises(PermanentFailure, match=r"5: User authorization failed.*vk.token"):
            await revoked.deliver(delivery(f"wall-{GROUP}_{POST}", None))
    finally:
        await revoked.close()


async def test_the_limiter_keeps_within_vks_limit(vk: VkServer) -> None:
    # 45 sends in a row: the community token's 20 a second is never exceeded (no error 6).
    vk.write(GROUP, 100, "Помогите")
    sender = transport(vk)
    try:
        for n in range(45):
            await sender.deliver(delivery("peer100", None, key=f"k{n}"))
    finally:
        await sender.close()
    assert len(vk.sent_to(GROUP, 100)) == 45


async def test_corrections_edit_a_message_and_follow_a_wall_reply(vk: VkServer) -> None:
    vk.write(GROUP, 100, "Помогите")
    citizen = vk.comment(GROUP, POST, 100, "Нет воды")
    sender = transport(vk)
    try:
        sent = await sender.deliver(delivery("peer100", None, key="m1", text="Воду дадут в 18"))
        assert sent.external_ref is not None
        fix = replace(
            delivery("peer100", None, key="m2", text="Воду дадут в 19"),
            target_ref=sent.external_ref,
        )
        fix = replace(fix, item=replace(fix.item, op=OutboxOp.EDIT))
        await sender.deliver(fix)
        wall = delivery(f"wall-{GROUP}_{POST}", str(citizen.id), key="w2", text="Воду дадут в 19")
        await sender.deliver(replace(wall, item=replace(wall.item, op=OutboxOp.EDIT)))
    finally:
        await sender.close()
    assert [m.text for m in vk.sent_to(GROUP, 100)] == ["Воду дадут в 19"]  # edited in place
    # VK lets only a person edit a comment: the correction is a new reply that says so.
    replies = [c.text for c in vk.comments(GROUP, POST) if c.from_id == -GROUP]
    assert replies == ["Исправление к нашему ответу выше:\nВоду дадут в 19"]


async def test_names_come_from_one_users_get_call_for_many_people(vk: VkServer) -> None:
    vk.add_person(100, "Пётр", "Сидоров")
    vk.add_person(101, "Анна", "Иванова")
    sender = transport(vk)
    try:
        names = await sender.api.names_of([100, 101, 999, 100])
        assert names == {100: "Пётр Сидоров", 101: "Анна Иванова"}  # 999: VK does not know
        assert await sender.api.name_of(101) == "Анна Иванова"
    finally:
        await sender.close()
    asked = [p["user_ids"] for name, p in vk.calls if name == "users.get"]
    assert asked == ["100,101,999", "101"]  # once each, in one call
