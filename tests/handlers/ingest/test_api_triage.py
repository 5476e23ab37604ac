"""Triage through the HTTP API of a running App: author labels reach the routing rules, and
official information never opens a case. The single path (one mention per request) and the
batch path (several) are both driven."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.model import AuthorLabel, Identity, Priority, Sentiment, SentimentSource
from bot.settings.config import Config, OfficialConfig, OfficialIdentity
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS, make_config
from tests.handlers.test_cli import free_port

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}
FORMS = {"Authorization": f"Bearer {API_TOKENS['FORMS_TOKEN']}"}

# No department's rule claims it: only the shipped opinion-leader rule can raise it.
COMPLAINT = "Позор, отвратительная работа администрации, стыдно за город"
# Another person's complaint in other words: the same words would join the first one's case as
# a similar mention (grouping.similar_within), and the rule under test would never be asked.
OTHER_COMPLAINT = "Позор, опять обещали и ничего не сделали, безобразие в городе"
PRAISE = "Спасибо, отличная работа, молодцы"


def mention(
    external_id: str, text: str, author: str, sentiment: str = "negative", reach: int = 120
) -> dict[str, object]:
    return {
        "external_id": external_id,
        "text": text,
        "sentiment": sentiment,
        "author": {"id": author, "name": "Ольга", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{external_id}",
        "reach": reach,
    }


Running = tuple[App, str, RecordingTransport]


@pytest.fixture
def start(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> Callable[[Callable[[Config], Config]], Any]:
    apps: list[App] = []

    async def _start(adjust: Callable[[Config], Config] = lambda c: c) -> Running:
        port = free_port()
        config = adjust(make_config(tmp_path, sqlite_url, port))
        transport = RecordingTransport()
        app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
        await app.start()
        apps.append(app)
        return app, f"http://127.0.0.1:{port}", transport

    return _start


@pytest.fixture
async def running(start: Callable[..., Any]) -> AsyncIterator[Running]:
    app, base, transport = await start()
    try:
        yield app, base, transport
    finally:
        await app.stop()


async def post(base: str, body: object, headers: dict[str, str] = MON) -> dict[str, Any]:
    url = f"{base}/api/v1/mentions"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers=headers) as response,
    ):
        assert response.status == 202, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def get_case(base: str, case_id: int) -> dict[str, Any]:
    url = f"{base}/api/v1/cases/{case_id}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=MON) as response:
        result: dict[str, Any] = await response.json()
        return result


async def test_an_opinion_leaders_complaint_gets_the_opinion_leader_rule(running: Running) -> None:
    app, base, _ = running
    # Reach and positive share past the playbook's author_labels thresholds, as the bot sees
    # them: the card is labelled opinion leader.
    await post(base, mention("p1", PRAISE, "leader", "positive", reach=50_000))
    async with app.database.uow() as uow:
        card = await uow.authors.find_by_identity(Identity("vk", "leader"))
    assert card is not None and AuthorLabel.OPINION_LEADER in card.labels

    leader = (await post(base, mention("n1", COMPLAINT, "leader")))["cases"][0]
    citizen = (await post(base, mention("n2", OTHER_COMPLAINT, "citizen")))["cases"][0]
    leaders_case, citizens_case = await get_case(base, leader), await get_case(base, citizen)
    assert leaders_case["priority"] == Priority.HIGH  # coordination-opinion-leaders
    assert leaders_case["department"] == "coordination"
    assert "opinion_leader" in leaders_case["codes"]
    assert citizens_case["priority"] == Priority.NORMAL
    assert "opinion_leader" not in citizens_case["codes"]


async def test_labels_reach_the_rules_on_the_batch_path_too(running: Running) -> None:
    _, base, _ = running
    await post(base, [mention("p1", PRAISE, "leader", "positive", reach=50_000)])
    body = await post(
        base, [mention("n1", COMPLAINT, "leader"), mention("n2", OTHER_COMPLAINT, "x")]
    )
    leader, citizen = body["cases"]
    assert (await get_case(base, leader))["priority"] == Priority.HIGH
    assert (await get_case(base, citizen))["priority"] == Priority.NORMAL


def _official(config: Config) -> Config:
    official = OfficialConfig(
        sources=["forms"], identities=[OfficialIdentity(channel="vk", external_id="ministry")]
    )
    return config.model_copy(update={"official": official})


async def test_official_information_opens_no_case(start: Callable[..., Any]) -> None:
    app, base, _ = await start(_official)
    try:
        complaint = "Третий день нет отопления в доме на Ленина, авария"
        # An official account, one at a time and in a batch; an official source.
        single = await post(base, mention("m1", complaint, "ministry"))
        batch = await post(
            base, [mention("m2", complaint, "ministry"), mention("c1", complaint, "citizen")]
        )
        forms = await post(base, mention("f1", complaint, "anyone"), headers=FORMS)
        assert single["cases"] == [None] and forms["cases"] == [None]
        assert batch["cases"][0] is None and batch["cases"][1] is not None

        # An author staff labelled official, on a source that is not.
        async with app.database.uow() as uow:
            card = await uow.authors.find_by_identity(Identity("vk", "citizen"))
            assert card is not None
            labels = card.labels | {AuthorLabel.OFFICIAL}
            await uow.authors.save(replace(card, labels=labels))
            await uow.commit()
        labelled = await post(base, mention("c2", complaint, "citizen"))
        labelled_batch = await post(
            base, [mention("c3", complaint, "citizen"), mention("z1", complaint, "other")]
        )
        assert labelled["cases"] == [None]
        assert labelled_batch["cases"][0] is None and labelled_batch["cases"][1] is not None

        async with app.database.uow() as uow:
            for source, external_id in [
                ("monitoring", "m1"),
                ("monitoring", "m2"),
                ("forms", "f1"),
                ("monitoring", "c2"),
                ("monitoring", "c3"),
            ]:
                stored = await uow.mentions.get_by_external(source, external_id)
                assert stored is not None, external_id
                assert stored.sentiment is Sentiment.NEUTRAL, external_id
                assert stored.sentiment_source is SentimentSource.RULE, external_id
                assert stored.case_id is None
            ministry = await uow.authors.find_by_identity(Identity("vk", "ministry"))
        assert ministry is not None and ministry.negative_count == 0
        assert ministry.neutral_count == 2
    finally:
        await app.stop()
