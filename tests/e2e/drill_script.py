"""The scripted drill both e2e drill tests play (Telegram and Matrix): its scenario, its clock
and the report figures its timings make."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.model import Identity, Mention, Sentiment
from bot.settings.drill_scenarios import DrillScenario

MOSCOW = ZoneInfo("Europe/Moscow")
START = datetime(2026, 12, 7, 10, 0, tzinfo=MOSCOW)  # a Monday, in working hours
MINUTE = timedelta(minutes=1)

# Real time (a drill hour is an hour): two housing mentions at 0 and 5 min, one transport at 0.
SCENARIO = DrillScenario.model_validate(
    {
        "id": "scripted",
        "title": {"ru": "Учебная авария", "en": "Scripted outage"},
        "hour_in_minutes": 60,
        "storylines": [
            {
                "id": "heat",
                "department": "housing",
                "source": "vk",
                "texts": {"ru": ["Нет отопления в доме {n}"], "en": ["No heating in house {n}"]},
                "bursts": [{"at": "0m", "count": 2, "over": "10m"}],
            },
            {
                "id": "bus",
                "department": "transport",
                "source": "vk",
                "texts": {"ru": ["Автобус {n} не пришёл"], "en": ["Bus {n} never came"]},
                "bursts": [{"at": "0m", "count": 1}],
            },
        ],
    }
)
DRILLS = {"scripted": SCENARIO}
# The shipped crisis checklist's first item (playbooks/default/crisis.yaml), as ticked.
FIRST_STEP = "Собрать кризисную группу (дежурный, руководитель пресс-службы, руководитель отдела)"


def real_mention(now: datetime) -> Mention:
    """One real complaint the same day: the digest counts this one, and only this one."""
    return Mention(
        source="vk",
        external_id="real-1",
        text="Третий день нет горячей воды, сколько можно",
        author=Identity("vk", "real-author", "Пётр Сидоров"),
        received_at=now,
        url="https://vk.com/wall-1_99",
        sentiment=Sentiment.NEGATIVE,
    )


# The script (minutes after the start) and what the report must say of it:
#   0   drill starts: cases A (housing) and B (transport)    5  case C (housing)
#   12  spec takes A (a reaction, no reply)                   15 the checklist's first item
#   20  spec drafts under A                                   30 appr approves (answer 30)
#   31  spec publishes A: simulated (first reply 31)          40 tspec takes B (no reply)
#   45  duty escalates C (level 1)                            90 drill stops: B only taken and
#       C untouched, their first-reply deadlines (10:00 and 10:05 + 60 working minutes) have
#       passed: two breaches
EXPECTED_OVERALL = {
    "cases": 3,
    "first_touch": {"done": 1, "average_min": 31.0, "longest_min": 31.0, "met": 1, "breached": 2},
    "answer": {"done": 1, "average_min": 30.0, "longest_min": 30.0, "met": 1, "breached": 0},
    "breaches": 2,
    "escalated_cases": 1,
    "escalations": 1,
    "highest_level": 1,
    "cases_by_level": {"1": 1},
    "left_open": 2,
    "actors": {"appr": 1, "duty": 1, "spec": 3, "tspec": 1},
}
EXPECTED_HOUSING_FIRST_TOUCH = {
    "done": 1,
    "average_min": 31.0,
    "longest_min": 31.0,
    "met": 1,
    "breached": 1,
}
EXPECTED_CHECKLIST = [
    {
        "step": 0,
        "text": FIRST_STEP,
        "actor": "duty",
        "minutes": 15.0,
        "crisis": 1,
        "at": (START + 15 * MINUTE).astimezone(ZoneInfo("UTC")).isoformat(),
    }
]
