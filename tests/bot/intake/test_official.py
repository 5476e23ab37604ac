"""Official information is not a complaint: what the config marks official, and what intake
makes of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.intake.official import Officials, as_information
from bot.model import AuthorLabel, Identity, Mention, Sentiment, SentimentSource
from bot.settings.config import load_config
from tests.bot.settings.test_config import base, write


def _mention(source: str = "vk", author: str = "id1", **changes: object) -> Mention:
    fields: dict[str, object] = {
        "source": source,
        "external_id": "1",
        "text": "Авария на теплосети: отопления не будет до вечера",
        "author": Identity("vk", author),
        "received_at": datetime(2026, 12, 1, tzinfo=UTC),
        "sentiment": Sentiment.NEGATIVE,
        **changes,
    }
    return Mention(**fields)  # type: ignore[arg-type]


def test_the_config_names_official_sources_feeds_and_accounts(tmp_path: Path) -> None:
    data = base()
    data["api"] = {
        "sources": [
            {"name": "ministry", "token": "ministry-token-0123456789", "official": True},
            {"name": "monitoring", "token": "monitoring-token-0123456789"},
        ]
    }
    data["feeds"] = [
        {"name": "news", "url": "https://example.gov.ru/rss", "official": True},
        {"name": "blogs", "url": "https://blogs.example.org/rss"},
    ]
    data["official"] = {
        "sources": ["telegram:press"],
        "identities": [{"channel": "vk", "external_id": "-100500"}],
    }
    config = load_config(write(tmp_path, data), env={})
    assert config.official_sources == {"ministry", "rss:news", "telegram:press"}
    assert config.official_identities == {("vk", "-100500")}

    officials = Officials.from_config(config)
    assert officials.speaks_for(_mention("rss:news"))
    assert not officials.speaks_for(_mention("rss:blogs"))
    assert officials.speaks_for(_mention(author="-100500"))
    linked = _mention(linked=(Identity("vk", "-100500"),))
    assert officials.speaks_for(linked)


def test_an_official_label_counts_and_staff_have_the_last_word() -> None:
    officials = Officials()
    assert not officials.speaks_for(_mention())
    assert officials.speaks_for(_mention(), {AuthorLabel.OFFICIAL})
    staff_said = _mention(sentiment_source=SentimentSource.STAFF)
    assert not Officials(frozenset({"vk"})).speaks_for(staff_said, {AuthorLabel.OFFICIAL})

    information = as_information(_mention(sentiment_score=0.9))
    assert information.sentiment is Sentiment.NEUTRAL
    assert information.sentiment_source is SentimentSource.RULE
    assert information.sentiment_score is None


def test_the_example_config_marks_nothing_official_by_default() -> None:
    example = Path(__file__).parents[3] / "config.example.yaml"
    config = load_config(example, env={})
    assert config.official_identities == frozenset()
