"""What the sandbox feeds the bot: a pasted text, or a ready sample, taken in as a mention
through the same validation and intake as the HTTP API's (handlers/ingest).

Samples come from providers. The shipped one takes a negative mention per department from
the playbook's triage corpus; another (crisis drill scenarios, say) is a FeedProvider given
to SandboxAdapter(feeds=[...]) and shows as its own group of buttons.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from bot.cases.grouping import IntakeResult
from bot.clock import Clock
from bot.intake.corpus import DEFAULT_CORPUS
from bot.intake.intake import MentionIntake
from bot.settings.config import Config
from bot.settings.drill_scenarios import DrillScenario
from handlers.ingest.schema import MentionIn

# Sources a pasted text may come from, besides the API sources that may ingest.
SOURCES = ("vk", "ok", "email", "web_form")
SAMPLE_AUTHORS = ("Пётр Сидоров", "Мария Кузьмина", "Ирина Белова", "Олег Титов", "Анна Зайцева")
# Samples the classifier should not need a second reading for.
AMBIGUOUS_TRAITS = frozenset({"sarcasm", "question", "mixed", "official", "short"})


@dataclass(frozen=True, slots=True)
class Sample:
    id: str  # unique among all providers' samples
    title: str  # the button's label
    text: str
    source: str
    author: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FeedProvider(Protocol):
    """A group of ready mentions the page offers as buttons."""

    @property
    def title(self) -> str: ...

    def samples(self) -> list[Sample]: ...


class CorpusSamples:
    """One plain negative mention per department, in the organisation's language, from the
    playbook's triage corpus."""

    def __init__(self, config: Config, title: str, corpus: Path | None = None) -> None:
        self.title = title
        self._config = config
        own = config.playbooks.path / "corpus" / DEFAULT_CORPUS.name
        self._corpus = corpus or (own if own.is_file() else DEFAULT_CORPUS)
        self._samples: list[Sample] | None = None

    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self._read()
        return self._samples

    def _read(self) -> list[Sample]:
        wanted = {d.id: d.name for d in self._config.departments}
        found: dict[str, Sample] = {}
        with self._corpus.open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                department = row.get("department")
                if (
                    row.get("label") != "negative"
                    or row.get("language") != self._config.locale
                    or department not in wanted
                    or department in found
                    or AMBIGUOUS_TRAITS & set(row.get("traits") or ())
                ):
                    continue
                author = SAMPLE_AUTHORS[len(found) % len(SAMPLE_AUTHORS)]
                found[department] = Sample(
                    f"corpus:{row['id']}", wanted[department], row["text"], "vk", author
                )
        return [found[d] for d in wanted if d in found]


class DrillSamples:
    """The first mention of each storyline of the playbook's drill scenarios
    (playbooks/*/drills), in the organisation's language: a taste of a scenario without running
    the drill (`/drill start` runs the whole timeline, marked DRILL)."""

    def __init__(self, scenarios: Iterable[DrillScenario], locale: str, title: str) -> None:
        self.title = title
        self._samples = [
            Sample(
                f"drill:{scenario.id}:{storyline.id}",
                f"{scenario.title.get(locale)}: {storyline.id}",
                storyline.texts.get(locale)[0].replace("{n}", "1"),
                storyline.source if storyline.source in SOURCES else SOURCES[0],
                SAMPLE_AUTHORS[n % len(SAMPLE_AUTHORS)],
            )
            for n, (scenario, storyline) in enumerate(
                (scenario, storyline) for scenario in scenarios for storyline in scenario.storylines
            )
        ]

    def samples(self) -> list[Sample]:
        return self._samples


def sources(config: Config) -> list[str]:
    """What the page offers as a pasted mention's source."""
    api = [s.name for s in config.api.sources if "ingest" in s.scopes]
    return [*api, *(s for s in SOURCES if s not in api)]


class FeedError(ValueError):
    """The text cannot be a mention; the message says why (the API's own validation)."""


async def feed(
    intake: MentionIntake, clock: Clock, text: str, source: str, author: str
) -> IntakeResult:
    """A mention as the API would take it from `source`, with a fresh external id."""
    record = {
        "external_id": f"sandbox-{secrets.token_hex(8)}",
        "text": text,
        "author": {"id": f"sandbox-{secrets.token_hex(4)}", "name": author},
    }
    try:
        mention = MentionIn.model_validate(record).to_domain(source, clock.now())
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise FeedError(problems) from None
    return await intake.receive(mention)
