"""A source's own record (monitoring JSON, a spreadsheet row) becomes the API's mention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.intake.mapping import MappingError, RecordMapper, check_mapping, map_record
from bot.settings.connections import SourceMapping
from handlers.ingest.api import MentionIn

MSK = ZoneInfo("Europe/Moscow")

MONITORING = SourceMapping(
    fields={
        "external_id": "post.id",
        "text": "post.items.0.text",
        "author.id": "post.author.id",
        "author.name": "post.author.name",
        "author.email": "post.author.contacts.email",
        "author.phone": "post.author.contacts.phone",
        "published_at": "post.date",
        "sentiment": "tone",
        "codes": "tags",
        "url": "post.link",
    },
    constants={"author.channel": "vk", "language": "ru", "codes": "monitoring"},
    date_format="%d.%m.%Y %H:%M",
    sentiment_values={"Негатив": "negative", "-1": "negative", "0": "neutral", "1": "positive"},
)


def monitoring_record(**post: Any) -> dict[str, Any]:
    return {
        "post": {
            "id": 90017,
            "items": [{"text": "  Третий день нет отопления  "}, {"text": "ignored"}],
            "author": {
                "id": 7.0,
                "name": "Ольга",
                "contacts": {"email": "Olga@Example.ORG", "phone": "8 (912) 345-67-89"},
            },
            "date": "01.02.2024 10:30",
            "link": "https://vk.com/wall-1_90017",
            **post,
        },
        "tone": -1,
        "tags": "heating; Ленина ,",
    }


def test_dotted_paths_list_indices_constants_and_translations() -> None:
    mapped = map_record(monitoring_record(), MONITORING, MSK)
    assert mapped == {
        "external_id": "90017",  # numbers become the text ids are
        "text": "Третий день нет отопления",
        "url": "https://vk.com/wall-1_90017",
        "published_at": datetime(2024, 2, 1, 10, 30, tzinfo=MSK),  # naive: the org's zone
        "language": "ru",
        "sentiment": "negative",
        "codes": ["heating", "Ленина"],  # the source's own codes win over the constant
        "author": {"id": "7", "name": "Ольга", "channel": "vk"},
        "identities": [
            {"channel": "email", "id": "olga@example.org"},
            {"channel": "phone", "id": "+79123456789"},  # 8 … is +7 … dialled at home
        ],
    }
    # Constants fill what the record lacks.
    record = monitoring_record()
    del record["tags"]
    assert map_record(record, MONITORING, MSK)["codes"] == ["monitoring"]


def test_the_result_is_what_the_api_validates() -> None:
    mapped = map_record(monitoring_record(), MONITORING, MSK)
    mapped.pop("identities")
    mention = MentionIn.model_validate(mapped).to_domain("monitoring", datetime.now(UTC))
    assert mention.author.channel == "vk" and mention.author.external_id == "7"
    assert mention.published_at == datetime(2024, 2, 1, 7, 30, tzinfo=UTC)


def test_without_a_mapping_fields_have_our_names_and_whole_keys_come_first() -> None:
    row = {
        "external_id": "r-1",
        "text": "Спасибо!",
        "author.id": "id42",  # a spreadsheet title with a dot
        "author": {"id": "nested"},
        "published_at": "2024-05-01T10:00:00+03:00",
        "reach": "12 500",
        "sentiment_score": "0,75",
        "codes": "",
        "story_id": None,
        "unknown column": "ignored",
    }
    mapped = map_record(row, None, MSK)
    assert mapped == {
        "external_id": "r-1",
        "text": "Спасибо!",
        "published_at": datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=3))),
        "reach": 12_500,
        "sentiment_score": 0.75,
        "author": {"id": "id42"},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=MSK)),
        ("2024-05-01T07:00:00Z", datetime(2024, 5, 1, 7, tzinfo=UTC)),
        (datetime(2024, 5, 1, 9, 15), datetime(2024, 5, 1, 9, 15, tzinfo=MSK)),  # Excel cell
        (1_714_550_400, datetime(2024, 5, 1, 8, tzinfo=UTC)),  # Unix seconds
        (1_714_550_400_000, datetime(2024, 5, 1, 8, tzinfo=UTC)),  # … and milliseconds
    ],
)
def test_dates(value: object, expected: datetime) -> None:
    row = {"external_id": "1", "text": "t", "author.id": "a", "published_at": value}
    assert map_record(row, None, MSK)["published_at"] == expected


def test_every_problem_of_a_record_is_reported() -> None:
    record = monitoring_record(date="вчера", author={"name": "нет id"})
    record["tone"] = "злой"
    with pytest.raises(MappingError) as caught:
        map_record(record, MONITORING, MSK)
    problems = dict(caught.value.problems)
    assert problems["published_at"] == "'вчера' is not a date (%d.%m.%Y %H:%M)"
    assert problems["sentiment"].startswith("unknown value 'злой' (known: -1, 0, 1, negative")
    assert problems["author.id"] == "missing (looked for 'post.author.id')"
    assert caught.value.field == "published_at"  # the first, for callers that show one
    assert caught.value.partial["text"] == "Третий день нет отопления"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("author.email", "нет", "'нет' is not an e-mail address"),
        ("author.phone", "call me", "'call me' is not a phone number"),
        ("text", ["a", "b"], "expected one value, got a list"),
    ],
)
def test_bad_values(field: str, value: object, message: str) -> None:
    row = {"external_id": "1", "text": "t", "author.id": "a", field: value}
    with pytest.raises(MappingError) as caught:
        map_record(row, None, MSK)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_a_missing_required_field_names_where_it_was_looked_for() -> None:
    mapping = SourceMapping(fields={"text": "Текст"})
    with pytest.raises(MappingError) as caught:
        map_record({"external_id": "1", "author.id": "a"}, mapping, MSK)
    assert caught.value.field == "text"
    assert caught.value.message == "missing (looked for 'Текст')"


def test_mistakes_in_a_mapping_itself_are_found_before_any_record() -> None:
    mapping = SourceMapping(
        fields={"txt": "body"}, constants={"author.email": "no", "sentiment": "bad"}
    )
    problems = dict(check_mapping(mapping))
    assert problems["fields.txt"].startswith("unknown field (known: external_id, text")
    assert problems["constants.author.email"] == "'no' is not an e-mail address"
    assert problems["constants.sentiment"].startswith("unknown value 'bad'")
    with pytest.raises(ValueError, match=r"fields\.txt: unknown field"):
        RecordMapper(mapping, MSK)


def test_a_mapper_for_known_columns_maps_rows_as_the_general_one() -> None:
    mapping = SourceMapping(
        fields={"external_id": "ID", "text": "Текст", "author.id": "Автор.ID"},
        constants={"author.channel": "crm", "language": "ru"},
    )
    general = RecordMapper(mapping, MSK)
    flat = general.for_columns(["ID", "Текст", "Автор.ID", "Прочее"])
    row = {"ID": 5, "Текст": " Спасибо ", "Автор.ID": "c-1", "Прочее": "x"}
    assert flat(row) == general(row)
    with pytest.raises(MappingError) as caught:
        flat({**row, "Текст": ""})
    assert (caught.value.field, caught.value.message) == ("text", "missing (looked for 'Текст')")
