"""A huge batch is classified off the event loop: /healthz answers while it is being
classified (issue 15, fault 4). Asserted on what happened while, never on how long."""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import CodeType, FrameType

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.intake.intake import MentionIntake
from handlers.app import App
from tests.doubles.api_app import running_api
from tests.doubles.support import API_TOKENS

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}
CLASSIFYING: frozenset[CodeType] = frozenset(
    {MentionIntake.prepare.__code__, MentionIntake.plan.__code__}
)
WORDS = tuple(
    [
        "нет",
        "отопления",
        "батареи",
        "холодные",
        "третий",
        "день",
        "жалоба",
        "автобус",
        "не",
        "пришёл",
        "яма",
        "на",
        "дороге",
        "мусор",
        "не",
        "вывозят",
        "спасибо",
        "за",
        "ремонт",
        "двора",
        "управляющая",
        "компания",
        "не",
        "отвечает",
    ]
)


def classifying_in_another_thread() -> bool:
    """Is some other thread inside the sentiment classifier or the router right now?"""
    here = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == here:
            continue
        walk: FrameType | None = frame
        while walk is not None:
            if walk.f_code in CLASSIFYING:
                return True
            walk = walk.f_back
    return False


def long_mention(number: int, rnd: random.Random) -> dict[str, object]:
    text = " ".join(rnd.choice(WORDS) for _ in range(3_000))[:20_000]
    return {  # no sentiment: Otklik's classifier decides, which is the costly part
        "external_id": f"long-{number}",
        "text": text,
        "author": {"id": f"user-{number}", "name": "Ольга", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{number}",
    }


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str]]:
    async with running_api(tmp_path, sqlite_url, clock) as started:
        yield started


async def test_healthz_answers_while_a_huge_batch_is_classified(
    running: tuple[App, str],
) -> None:
    _app, base = running
    rnd = random.Random(15)
    batch = [long_mention(n, rnd) for n in range(200)]  # 200 x 20,000 characters
    answered_meanwhile = 0  # /healthz answers given while another thread was classifying
    answered = 0
    posted = asyncio.Event()

    async with aiohttp.ClientSession() as http:

        async def probe() -> None:
            nonlocal answered, answered_meanwhile
            while not posted.is_set():
                async with http.get(f"{base}/healthz") as response:
                    assert response.status == 200
                answered += 1
                answered_meanwhile += classifying_in_another_thread()

        prober = asyncio.create_task(probe())
        body_bytes = io.BytesIO(json.dumps(batch, ensure_ascii=False).encode())
        headers = {**MON, "Content-Type": "application/json"}
        async with http.post(
            f"{base}/api/v1/mentions", data=body_bytes, headers=headers
        ) as response:
            assert response.status == 202
            body = await response.json()
        posted.set()
        await prober

    assert body["accepted"] == 200
    assert answered > 0
    # Before the fix the batch was classified on the event loop itself: no request could be
    # answered until it was done, so this count was 0.
    assert answered_meanwhile > 0
