"""drills/*.yaml: crisis drill scenarios, one file each, the file name being the scenario id.

A scenario is a timeline of synthetic mentions: storylines (text templates in ru and en, a
department, a source), each with bursts ("N mentions over M minutes", even, ramp or spike),
played with a time compression (a drill hour passes in `hour_in_minutes` real minutes).
`crisis: false` runs it without a drill crisis card (bot/drills/service.py opens one).
bot/drills/timeline.py expands it; playbook.py loads the directory.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.settings.errors import Problem, field_problems
from bot.settings.fields import Duration, Id, LocalizedText, StrictModel, Text
from bot.settings.yamlfile import YamlError, read_yaml, top_level_problem

__all__ = [
    "DRILLS_DIR",
    "BurstShape",
    "DrillBurst",
    "DrillScenario",
    "DrillStoryline",
    "StorylineTexts",
    "load_scenarios",
]

DRILLS_DIR = "drills"
MAX_MENTIONS = 2_000  # per scenario: a drill floods chats on purpose, but not without end
_SCENARIO_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class BurstShape(StrEnum):
    EVEN = "even"  # evenly spread over the burst
    RAMP = "ramp"  # few at first, more and more: a story catching on
    SPIKE = "spike"  # most at once, then a tail: a post going viral


class DrillBurst(StrictModel):
    at: Duration  # drill time from the start of the drill
    count: int = Field(ge=1, le=MAX_MENTIONS)
    over: Duration = timedelta(0)  # 0: all at once
    shape: BurstShape = BurstShape.EVEN


class StorylineTexts(StrictModel):
    """Text templates; `{n}` becomes the mention's number in its storyline."""

    ru: tuple[Text, ...] = Field(min_length=1)
    en: tuple[Text, ...] = Field(min_length=1)

    def get(self, locale: str) -> tuple[str, ...]:
        return self.en if locale == "en" else self.ru


class DrillStoryline(StrictModel):
    id: Id
    department: Id  # the department the drill tests: its cases open there
    source: Text = "drill"  # shown on the card, as a real source's name would be
    texts: StorylineTexts
    bursts: tuple[DrillBurst, ...] = Field(min_length=1)


class DrillScenario(StrictModel):
    id: Id  # the file name without .yaml
    title: LocalizedText
    description: LocalizedText | None = None
    # A drill hour passes in this many real minutes: 60 plays in real time, 10 six times faster.
    hour_in_minutes: float = Field(default=60.0, gt=0, le=600)
    # Open a drill crisis card with the checklist buttons in the coordination chat.
    crisis: bool = True
    storylines: tuple[DrillStoryline, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _sane(self) -> DrillScenario:
        seen: set[str] = set()
        for storyline in self.storylines:
            if storyline.id in seen:
                raise ValueError(f"storyline id {storyline.id!r} is used twice")
            seen.add(storyline.id)
        total = sum(b.count for s in self.storylines for b in s.bursts)
        if total > MAX_MENTIONS:
            raise ValueError(f"{total} mentions: a scenario has at most {MAX_MENTIONS}")
        return self

    @property
    def compression(self) -> float:
        """Drill minutes per real minute."""
        return 60.0 / self.hour_in_minutes

    @property
    def length(self) -> timedelta:
        """Drill time from the start to the last mention."""
        return max(b.at + b.over for s in self.storylines for b in s.bursts)


class _ScenarioFile(StrictModel):
    """A file as written: the id comes from its name."""

    title: LocalizedText
    description: LocalizedText | None = None
    hour_in_minutes: float = Field(default=60.0, gt=0, le=600)
    # Open a drill crisis card with the checklist buttons in the coordination chat.
    crisis: bool = True
    storylines: tuple[DrillStoryline, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_id(cls, data: object) -> object:
        if isinstance(data, dict) and "id" in data:
            raise ValueError("the scenario id is the file name; remove `id`")
        return data


def load_scenarios(playbook_dir: Path, problems: list[Problem]) -> dict[str, DrillScenario]:
    """Every drills/*.yaml of a playbook; none when the directory is absent. Problems name
    the file and the field."""
    folder = playbook_dir / DRILLS_DIR
    scenarios: dict[str, DrillScenario] = {}
    if not folder.is_dir():
        return scenarios
    for file in sorted(folder.glob("*.yaml")):
        scenario_id = file.stem
        if not _SCENARIO_ID.match(scenario_id):
            problems.append((file, "", "a scenario file name is lower-case latin, digits, - and _"))
            continue
        try:
            data = read_yaml(file)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((file, "", f"cannot read: {exc}"))
            continue
        except YamlError as exc:
            problems.extend(exc.problems)
            continue
        wrong = top_level_problem(data)
        if wrong is not None or not isinstance(data, dict):
            problems.append((file, "", wrong or ""))
            continue
        model: type[BaseModel] = _ScenarioFile
        try:
            parsed = _ScenarioFile.model_validate(data)
        except ValidationError as exc:
            fields = field_problems(exc, model, echo_input=True, list_allowed=True)
            problems.extend((file, f, message) for f, message in fields)
            continue
        try:
            scenarios[scenario_id] = DrillScenario(
                id=scenario_id,
                title=parsed.title,
                description=parsed.description,
                hour_in_minutes=parsed.hour_in_minutes,
                crisis=parsed.crisis,
                storylines=parsed.storylines,
            )
        except ValidationError as exc:
            problems.extend((file, path or "storylines", m) for path, m in field_problems(exc))
    return scenarios
