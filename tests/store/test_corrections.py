"""Staff corrections of a mention's sentiment, on both backends: looked up by id or URL,
rewritten with who and when, listed as training examples."""

from __future__ import annotations

from datetime import timedelta

from bot.model import Author, Identity, Mention, Sentiment, SentimentSource
from store.db import Database
from tests.store.test_store import T0, make_case


async def test_corrections_are_recorded_and_listed(database: Database) -> None:
    identity = Identity("vk", "id42", "Пётр Сидоров")
    async with database.uow() as uow:
        author = await uow.authors.add(Author(None, "Пётр Сидоров", (identity,), first_seen_at=T0))
        case = await uow.cases.add(make_case(department="transport"))
        stored = []
        for n, text in enumerate(["Автобус опять не пришёл", "Ужасно рад новому парку", "ок"]):
            mention = await uow.mentions.add(
                Mention(
                    source="vk",
                    external_id=f"wall-1_{n}",
                    text=text,
                    author=identity,
                    received_at=T0,
                    url=f"https://vk.com/wall-1_{n}",
                    language="ru",
                    sentiment=Sentiment.NEGATIVE,
                    sentiment_source=SentimentSource.CLASSIFIER,
                    author_id=author.id,
                )
            )
            assert mention is not None and mention.id is not None
            stored.append(mention)
        first, second, untouched = stored
        await uow.mentions.attach_many([(first.id or 0, case.id or 0)])
        await uow.commit()

    async with database.uow() as uow:
        found = await uow.mentions.find_by_url("https://vk.com/wall-1_1")
        assert found is not None and found.id == second.id
        assert await uow.mentions.find_by_url("https://vk.com/nothing") is None
        assert await uow.mentions.get(10**9) is None
        await uow.mentions.correct_sentiment(
            [second.id or 0], Sentiment.NEUTRAL, "spec", T0 + timedelta(hours=1)
        )
        await uow.mentions.correct_sentiment(
            [first.id or 0], Sentiment.NEGATIVE, "duty", T0 + timedelta(hours=2)
        )
        await uow.commit()

    async with database.uow() as uow:
        got = await uow.mentions.get(second.id or 0)
        assert got is not None
        assert (got.sentiment, got.sentiment_source) == (Sentiment.NEUTRAL, SentimentSource.STAFF)
        corrections = await uow.mentions.corrections(T0)
        later = await uow.mentions.corrections(T0 + timedelta(minutes=90))
        plain = await uow.mentions.get(untouched.id or 0)
    assert [
        (c.mention_id, c.text, c.language, c.sentiment, c.department, c.by) for c in corrections
    ] == [
        (second.id, "Ужасно рад новому парку", "ru", Sentiment.NEUTRAL, None, "spec"),
        (first.id, "Автобус опять не пришёл", "ru", Sentiment.NEGATIVE, "transport", "duty"),
    ]
    assert corrections[0].at == T0 + timedelta(hours=1)
    assert [c.mention_id for c in later] == [first.id]
    assert plain is not None and plain.sentiment_source is SentimentSource.CLASSIFIER


async def test_the_triage_list_holds_undecided_uncertain_mentions_newest_first(
    database: Database,
) -> None:
    identity = Identity("telegram", "7", "Ольга")
    async with database.uow() as uow:
        author = await uow.authors.add(Author(None, "Ольга", (identity,), first_seen_at=T0))
        case = await uow.cases.add(make_case(department="housing"))
        ids: dict[str, int] = {}
        for key, source, sentiment in (
            ("old", "telegram", Sentiment.UNCERTAIN),
            ("sure", "telegram", Sentiment.NEGATIVE),
            ("cased", "telegram", Sentiment.UNCERTAIN),
            ("decided", "telegram", Sentiment.UNCERTAIN),
            ("press", "monitoring", Sentiment.UNCERTAIN),
            ("new", "rss:news", Sentiment.UNCERTAIN),
        ):
            mention = await uow.mentions.add(
                Mention(
                    source=source,
                    external_id=key,
                    text=key,
                    author=identity,
                    received_at=T0,
                    sentiment=sentiment,
                    sentiment_source=SentimentSource.CLASSIFIER,
                    author_id=author.id,
                )
            )
            assert mention is not None and mention.id is not None
            ids[key] = mention.id
        await uow.mentions.attach_many([(ids["cased"], case.id or 0)])
        await uow.commit()

    async with database.uow() as uow:
        everything, total = await uow.mentions.undecided(frozenset(), 10)
        assert [m.external_id for m in everything] == ["new", "press", "decided", "old"]
        assert total == 4
        await uow.mentions.correct_sentiment([ids["decided"]], Sentiment.NEUTRAL, "duty", T0)
        await uow.commit()

    async with database.uow() as uow:
        own, total = await uow.mentions.undecided(frozenset({"monitoring"}), 1)
    assert [m.external_id for m in own] == ["new"]
    assert total == 2  # "old" waits too, past the bound
