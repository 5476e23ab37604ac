"""A scenario's timeline: burst shapes, the order of mentions, and time compression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.drills.timeline import burst_offsets, due_count, real_offset, timeline
from bot.settings.drill_scenarios import BurstShape, DrillBurst, DrillScenario

MINUTE = timedelta(minutes=1)


def burst(shape: BurstShape, count: int = 4, over: timedelta = 40 * MINUTE) -> DrillBurst:
    return DrillBurst(at=10 * MINUTE, count=count, over=over, shape=shape)


def test_burst_shapes() -> None:
    assert burst_offsets(burst(BurstShape.EVEN)) == [
        10 * MINUTE,
        20 * MINUTE,
        30 * MINUTE,
        40 * MINUTE,
    ]
    # Ramp: sparse first (gaps shrink); spike: dense first (gaps grow).
    ramp = burst_offsets(burst(BurstShape.RAMP))
    spike = burst_offsets(burst(BurstShape.SPIKE))
    assert ramp == [10 * MINUTE, 30 * MINUTE, timedelta(seconds=2297), timedelta(seconds=2678)]
    assert spike == [10 * MINUTE, 12.5 * MINUTE, 20 * MINUTE, 32.5 * MINUTE]
    assert burst_offsets(burst(BurstShape.EVEN, count=3, over=timedelta(0))) == [10 * MINUTE] * 3


def scenario() -> DrillScenario:
    return DrillScenario.model_validate(
        {
            "id": "s",
            "title": {"ru": "У", "en": "D"},
            "hour_in_minutes": 10,
            "storylines": [
                {
                    "id": "heat",
                    "department": "housing",
                    "texts": {"ru": ["Тепло {n}", "Батареи {n}"], "en": ["Heat {n}"]},
                    "bursts": [{"at": "0m", "count": 3, "over": "30m"}],
                },
                {
                    "id": "bus",
                    "department": "transport",
                    "source": "vk",
                    "texts": {"ru": ["Автобус {n}"], "en": ["Bus {n}"]},
                    "bursts": [{"at": "10m", "count": 1}],
                },
            ],
        }
    )


def test_timeline_orders_mentions_and_fills_the_texts() -> None:
    planned = timeline(scenario(), "ru")
    assert [(p.index, p.at, p.storyline, p.text) for p in planned] == [
        (0, 0 * MINUTE, "heat", "Тепло 1"),
        (1, 10 * MINUTE, "heat", "Батареи 2"),  # storyline order breaks the tie
        (2, 10 * MINUTE, "bus", "Автобус 1"),
        (3, 20 * MINUTE, "heat", "Тепло 3"),
    ]
    assert planned[2].department == "transport" and planned[2].source == "vk"
    assert planned[0].source == "drill"
    assert timeline(scenario(), "en")[3].text == "Heat 3"


def test_time_compression_decides_what_is_due() -> None:
    planned = timeline(scenario(), "en")
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    # A drill hour in 10 real minutes: drill minute 10 comes after 1 min 40 s.
    assert real_offset(10 * MINUTE, 10) == timedelta(seconds=100)
    assert due_count(planned, 10, start, start) == 1
    assert due_count(planned, 10, start, start + timedelta(seconds=99)) == 1
    assert due_count(planned, 10, start, start + timedelta(seconds=100)) == 3
    assert due_count(planned, 10, start, start + timedelta(hours=1)) == 4
    assert due_count(planned, 60, start, start + timedelta(seconds=100)) == 1  # real time
