"""The VK test server answers as VK documents: request and error format, token types,
random_id, rate limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.doubles.vk_server import VkServer

GROUP = 9
TOKEN = "group-token"


@pytest.fixture
async def vk() -> AsyncIterator[VkServer]:
    server = VkServer()
    await server.start()
    server.add_token(TOKEN, "group", GROUP)
    server.add_token("user-token", "user", 100)
    server.add_post(GROUP, 1)
    yield server
    await server.stop()


async def call(vk: VkServer, method: str, get: bool = False, **params: Any) -> dict[str, Any]:
    form = {k: str(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as session:
        url = f"{vk.api_base}/method/{method}"
        request = session.get(url, params=form) if get else session.post(url, data=form)
        async with request as answer:
            assert answer.status == 200  # VK answers errors with HTTP 200 too
            body: dict[str, Any] = await answer.json()
            return body


async def test_errors_have_the_documented_shape(vk: VkServer) -> None:
    body = await call(vk, "wall.createComment", post_id=1, v="5.199")
    assert body["error"]["error_code"] == 5
    assert body["error"]["error_msg"].startswith("User authorization failed")
    assert {"key": "post_id", "value": "1"} in body["error"]["request_params"]
    body = await call(vk, "wall.createComment", access_token=TOKEN, post_id=1)
    assert body["error"]["error_code"] == 8  # v is required
    assert (await call(vk, "wall.nope", access_token=TOKEN, v="5.199"))["error"]["error_code"] == 3
    # wall.getComments takes no community token.
    body = await call(vk, "wall.getComments", access_token=TOKEN, v="5.199", owner_id=-GROUP)
    assert body["error"]["error_code"] == 27


async def test_get_and_post_are_equal_and_guid_keeps_one_comment(vk: VkServer) -> None:
    params = {"v": "5.199", "owner_id": -GROUP, "post_id": 1, "message": "a", "guid": "g"}
    # A person (user token, GET) and the community (its token, POST) with the same guid.
    first = await call(vk, "wall.createComment", get=True, access_token="user-token", **params)
    again = await call(vk, "wall.createComment", access_token=TOKEN, from_group=GROUP, **params)
    assert first["response"]["comment_id"] != again["response"]["comment_id"]
    repeat = await call(vk, "wall.createComment", access_token=TOKEN, from_group=GROUP, **params)
    assert repeat["response"] == again["response"]  # the same guid: no second comment
    assert len(vk.comments(GROUP, 1)) == 2


async def test_random_id_sends_once_and_permission_is_needed(vk: VkServer) -> None:
    params = {"access_token": TOKEN, "v": "5.199", "peer_id": 100, "message": "hi"}
    refused = await call(vk, "messages.send", random_id=5, **params)
    assert refused["error"]["error_code"] == 901
    vk.write(GROUP, 100, "hello")
    first = await call(vk, "messages.send", random_id=5, **params)
    again = await call(vk, "messages.send", random_id=5, **params)
    other = await call(vk, "messages.send", random_id=6, **params)
    assert first["response"] == again["response"] != other["response"]
    assert len(vk.sent_to(GROUP, 100)) == 2
    missing = await call(vk, "messages.send", **params)
    assert missing["error"]["error_code"] == 100


async def test_more_than_the_limit_in_a_second_is_error_6(vk: VkServer) -> None:
    vk.write(GROUP, 100, "hello")
    params = {"access_token": TOKEN, "v": "5.199", "peer_id": 100, "message": "hi"}
    codes = [
        (await call(vk, "messages.send", random_id=n + 1, **params))
        .get("error", {})
        .get("error_code")
        for n in range(25)
    ]
    assert 6 in codes  # a community token: 20 a second
