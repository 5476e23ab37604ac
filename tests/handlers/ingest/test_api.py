"""The HTTP intake inside a running App: auth, validation, idempotency, routing into cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.model import CaseState, Priority, Sentiment, SentimentSource
from handlers.app import App
from tests.doubles.api_app import running_api
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}
FORMS = {"Authorization": f"Bearer {API_TOKENS['FORMS_TOKEN']}"}


def mention(external_id: str, text: str, sentiment: str = "negative") -> dict[str, object]:
    return {
        "external_id": external_id,
        "text": text,
        "sentiment": sentiment,
        "author": {"id": f"user-{external_id}", "name": "Ольга", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{external_id}",
        "reach": 120,
    }


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str, RecordingTransport]]:
    transport = RecordingTransport()
    async with running_api(tmp_path, sqlite_url, clock, transport) as (app, base):
        yield app, base, transport


async def test_mentions_become_routed_cases_once(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, transport = running
    batch = [
        mention("1", "Третий день нет отопления в доме на Ленина, батареи ледяные"),
        mention("2", "Спасибо за новый автобусный маршрут!", "positive"),
        mention("3", "Прорыв трубы, заливает подвал", "neutral"),  # urgent word forces a case
    ]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/mentions", json=batch, headers=MON) as response:
            assert response.status == 202
            body = await response.json()
        assert body["accepted"] == 3 and body["duplicates"] == 0
        heating, thanks, burst = body["cases"]
        assert thanks is None and heating and burst

        async with http.post(f"{base}/api/v1/mentions", json=batch[0], headers=MON) as response:
            assert (await response.json()) == {
                "accepted": 0,
                "duplicates": 1,
                "rejected": 0,
                "cases": [None],
                "results": [{"index": 0, "status": "duplicate", "case": None}],
            }

        async with http.get(f"{base}/api/v1/cases/{heating}", headers=MON) as response:
            case = await response.json()
        assert case["department"] == "housing" and case["state"] == CaseState.NEW
        assert case["first_touch_due_at"] is not None
        # Nobody wrote to the author yet; the shipped playbook sets no reaction deadline.
        assert case["first_touched_at"] is None and case["reaction_due_at"] is None
        async with http.get(f"{base}/api/v1/cases/{burst}", headers=MON) as response:
            assert (await response.json())["priority"] in (Priority.HIGH, Priority.CRITICAL)

    await app.worker.run_once()
    assert {s.chat for s in transport.posts()} == {"-100111"}  # housing's topic


async def test_bad_requests_are_refused_with_reasons(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, _ = running
    url = f"{base}/api/v1/mentions"
    broken = [mention("1", "ok"), {**mention("2", ""), "author": {"name": "no id"}, "color": 1}]
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=mention("1", "x")) as response:
            assert response.status == 401
        async with http.post(
            url, json=mention("1", "x"), headers={"Authorization": "Bearer wrong"}
        ) as response:
            assert response.status == 401
        async with http.get(f"{base}/api/v1/cases/1", headers=FORMS) as response:
            assert response.status == 403  # the forms source may only send
        async with http.post(url, data="{not json", headers=MON) as response:
            assert response.status == 400
        async with http.post(url, json=broken, headers=MON) as response:
            assert response.status == 202  # the good item is taken, the bad one explained
            body = await response.json()
        assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
        paths = {p["path"] for p in body["results"][1]["problems"]}
        assert paths == {"[1].text", "[1].author.id", "[1].color"}
        async with http.post(url, json=broken[1:], headers=MON) as response:
            assert response.status == 422  # nothing taken
            paths = {p["path"] for p in (await response.json())["problems"]}
        assert paths == {"[0].text", "[0].author.id", "[0].color"}
        async with http.post(
            url, json=[mention(str(i), "x") for i in range(1001)], headers=MON
        ) as response:
            assert response.status == 422
        async with http.get(f"{base}/healthz") as response:
            assert (await response.json())["outbox_depth"] == 1  # the accepted item's card
    async with app.database.uow() as uow:  # nothing of the refused items was stored
        assert await uow.mentions.get_by_external("monitoring", "2") is None
        assert await uow.mentions.get_by_external("monitoring", "1001") is None


async def test_metrics_and_openapi_match_the_behaviour(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, _ = running
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/mentions",
            json=[mention("1", "Нет отопления третий день"), mention("2", "Спасибо", "positive")],
            headers=MON,
        ) as response:
            assert response.status == 202
        await app.worker.run_once()
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 404  # not beside the API: on an address of its own
        assert app.metrics_address is not None
        host, port = app.metrics_address
        token = {"Authorization": f"Bearer {API_TOKENS['METRICS_TOKEN']}"}
        async with http.get(f"http://{host}:{port}/metrics", headers=token) as response:
            text = await response.text()
        assert 'otklik_mentions_total{outcome="case",source="monitoring"} 1.0' in text
        assert 'otklik_mentions_total{outcome="stored",source="monitoring"} 1.0' in text
        assert 'otklik_cases_opened_total{department="housing"} 1.0' in text
        assert "otklik_outbox_depth 0.0" in text
        assert 'otklik_delivery_latency_seconds_count{transport="telegram"} 1.0' in text

        async with http.get(f"{base}/api/v1/openapi.json") as response:
            spec = await response.json()
    post = spec["paths"]["/api/v1/mentions"]["post"]
    assert set(post["responses"]) == {"202", "400", "401", "403", "413", "415", "422", "429", "503"}
    schema = spec["components"]["schemas"]["MentionIn"]
    assert set(schema["required"]) == {"external_id", "text", "author"}
    assert schema["additionalProperties"] is False
    assert (
        post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] == 1000
    )


async def test_a_source_with_its_own_json_is_mapped(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, _ = running
    brand = {"Authorization": f"Bearer {API_TOKENS['BRAND_TOKEN']}"}
    record = {
        "post": {
            "id": 77,
            "body": "Опять прорвало трубу, заливает подвал",
            "tone": "neg",
            "link": "https://vk.com/wall-1_77",
            "user": {"uid": "id9", "name": "Ольга", "email": "olga@example.org"},
        }
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/mentions", json=[record], headers=brand) as response:
            assert response.status == 202, await response.text()
            assert (await response.json())["cases"][0] is not None
        broken = {"post": {"body": "no id"}}
        async with http.post(f"{base}/api/v1/mentions", json=broken, headers=brand) as response:
            assert response.status == 422
            paths = {p["path"] for p in (await response.json())["problems"]}
        assert "[0].external_id" in paths
    async with app.database.uow() as uow:
        stored = await uow.mentions.get_by_external("brand", "77")
        assert stored is not None and stored.author_id is not None
        author = await uow.authors.get(stored.author_id)
    assert author is not None
    assert {(i.channel, i.external_id) for i in author.identities} == {
        ("vk", "id9"),
        ("email", "olga@example.org"),
    }


async def test_a_mention_without_sentiment_is_classified_by_the_model(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, _ = running
    assert app.intake.model is not None  # the shipped model, as the example config runs it
    complaint = mention("m1", "Третий день нет горячей воды, управляющая компания молчит")
    thanks = mention("m2", "Огромное спасибо за новую детскую площадку во дворе!")
    for item in (complaint, thanks):
        del item["sentiment"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/v1/mentions", json=[complaint, thanks], headers=MON) as response,
    ):
        assert response.status == 202
        body = await response.json()
    opened, none = body["cases"]
    assert opened is not None and none is None
    async with app.database.uow() as uow:
        negative = await uow.mentions.get_by_external("monitoring", "m1")
        positive = await uow.mentions.get_by_external("monitoring", "m2")
    assert negative is not None and positive is not None
    assert negative.sentiment is Sentiment.NEGATIVE
    assert negative.sentiment_source is SentimentSource.CLASSIFIER
    assert negative.sentiment_score is not None and 0.5 < negative.sentiment_score <= 1.0
    assert positive.sentiment in (Sentiment.POSITIVE, Sentiment.NEUTRAL)
    assert positive.sentiment_score is not None and positive.sentiment_score < 0.2
    # /case explains the model's call with the strongest signals of the text and p.
    duty = app.directory.by_staff_id("duty")  # /case of any case: the duty officer may
    assert duty is not None
    view = await app.answers.case(duty, opened)
    assert view["view"] == "page"
    why = view["context"]["why_negative"]
    assert why["p"] == round(negative.sentiment_score, 2) and why["signals"]
    page = app.texts.render("case_thread.html.j2", **view["context"])
    assert f"Почему негатив: {', '.join(why['signals'])} ({why['p']:.2f})" in page
