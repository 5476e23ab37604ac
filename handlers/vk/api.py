"""A small VK API client: the methods the bot calls, form-encoded POST, errors as exceptions.

Requests (dev.vk.com/ru/api/api-requests): POST or GET https://api.vk.com/method/<name>, the
parameters form-encoded, `access_token` and `v` with every call. A response is
{"response": ...} or {"error": {"error_code", "error_msg", "request_params"}}
(dev.vk.com/ru/reference/errors; codes in VKCOM/vk-api-schema errors.json).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from bot.settings.connections import VkConfig

TIMEOUT_S = 20.0
MAX_ANSWER = 1024 * 1024  # the methods we call answer a few hundred bytes
# A community access token may make 20 requests a second, a user token 3 (vk.com/dev/
# api_requests, "Limits and recommendations"). A sliding window a little longer than a
# second: VK counts a call when it arrives, a moment after it left here.
COMMUNITY_PER_SECOND = 20
USERS_PER_CALL = 1000  # users.get's limit on user_ids
WINDOW_S = 1.1


class VkApiError(Exception):
    """VK answered with an error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"VK error {code}: {message}")
        self.code = code
        self.message = message


class VkAnswerError(Exception):
    """VK's answer is not one of its documented shapes (a proxy's page, a cut connection)."""


class RateLimiter:
    """At most `per_second` calls in any second, in the order they asked."""

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._recent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= WINDOW_S:
                self._recent.popleft()
            if len(self._recent) >= self._per_second:
                await asyncio.sleep(WINDOW_S - (now - self._recent[0]))
                self._recent.popleft()
            self._recent.append(time.monotonic())


class VkApi:
    def __init__(self, config: VkConfig, per_second: int = COMMUNITY_PER_SECOND) -> None:
        self._base = config.api_base
        self._token = config.token
        self._version = config.version
        self._limiter = RateLimiter(per_second)
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, params: Mapping[str, str | int]) -> Any:
        """The method's `response`; VkApiError for VK's error; VkAnswerError, aiohttp's
        errors or TimeoutError when there is no answer to trust."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        form = {key: str(value) for key, value in params.items()}
        form["access_token"] = self._token
        form["v"] = self._version
        await self._limiter.wait()
        async with self._session.post(f"{self._base}/method/{method}", data=form) as answer:
            if answer.status >= 500:
                raise VkAnswerError(f"HTTP {answer.status} from VK")
            raw = await answer.content.read(MAX_ANSWER + 1)
        if len(raw) > MAX_ANSWER:
            raise VkAnswerError("VK's answer is larger than expected")
        try:
            body = json.loads(raw)
        except ValueError:
            raise VkAnswerError(f"VK's answer is not JSON (HTTP {answer.status})") from None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            code = error.get("error_code")
            raise VkApiError(
                code if isinstance(code, int) else 0, str(error.get("error_msg", ""))[:300]
            )
        if not isinstance(body, dict) or "response" not in body:
            raise VkAnswerError("VK's answer has neither response nor error")
        return body["response"]

    async def name_of(self, user_id: int) -> str | None:
        """A person's name as VK shows it; None when VK does not say."""
        return (await self.names_of([user_id])).get(user_id)

    async def names_of(self, user_ids: Sequence[int]) -> dict[int, str]:
        """People's names as VK shows them, by id, in one users.get call per
        USERS_PER_CALL ids (users.get takes a community token and a comma-separated list:
        vk-api-schema users/methods.json); those VK does not know are left out."""
        names: dict[int, str] = {}
        wanted = list(dict.fromkeys(user_ids))
        for start in range(0, len(wanted), USERS_PER_CALL):
            chunk = wanted[start : start + USERS_PER_CALL]
            response = await self.call("users.get", {"user_ids": ",".join(map(str, chunk))})
            if not isinstance(response, list):
                continue
            asked = set(chunk)
            for person in response:
                if not isinstance(person, dict):
                    continue
                user_id = person.get("id")
                if not isinstance(user_id, int) or user_id not in asked:
                    continue  # only the ids asked about: VK's answer is untrusted too
                name = " ".join(
                    str(person.get(part) or "").strip() for part in ("first_name", "last_name")
                ).strip()
                if name:
                    names[user_id] = name
        return names

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
