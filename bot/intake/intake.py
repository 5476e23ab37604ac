"""From a mention to a case: route it by the playbook, decide whether it needs an answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bot.cases.grouping import CaseOpening, IntakeResult
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.intake.lemmas import Lemmatiser
from bot.intake.router import DepartmentRouter
from bot.intake.routing import RouteBasis, RouteDecision, consult_router, route
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.model import Mention, Priority, Sentiment, SentimentSource
from bot.settings.playbook import Playbook

# (department, priority, opened_at, policy override) -> (policy name, first touch, answer,
# resolution). Injected so the SLA engine owns deadline arithmetic.
DeadlinePlanner = Callable[
    [str, Priority, datetime, str | None], tuple[str, datetime, datetime, datetime]
]


class MentionIntake:
    def __init__(
        self,
        cases: CaseService,
        playbook: Playbook,
        clock: Clock,
        plan: DeadlinePlanner,
        observe: Callable[[Mention, IntakeResult], None] | None = None,
        classifier: SentimentClassifier | None = None,
        lemmatiser: Lemmatiser | None = None,
        router: DepartmentRouter | None = None,
    ) -> None:
        self._classifier = classifier
        self._router = router  # for mentions no rule claims; restricted to the configured ones
        self._stem = lemmatiser.lemma if lemmatiser else None
        self._observe = observe  # metrics: every mention from every channel passes here
        self._cases = cases
        self._playbook = playbook
        self._clock = clock
        self._plan = plan

    def prepare(self, mention: Mention) -> Mention:
        """The source's sentiment when it gave one; otherwise Otklik's classifier decides."""
        if mention.sentiment is not None:
            return mention
        if self._classifier is None:
            return replace(mention, sentiment=Sentiment.NEUTRAL)
        result = self._classifier.classify(mention.text, mention.language)
        return replace(
            mention,
            sentiment=result.sentiment,
            sentiment_source=SentimentSource.CLASSIFIER,
            sentiment_score=result.score,
            language=mention.language or result.language,
        )

    def decide(self, mention: Mention) -> tuple[RouteDecision, CaseOpening | None]:
        decision = route(
            self._playbook,
            mention.text,
            mention.source,
            mention.codes,
            (),
            mention.language,
            stem=self._stem,
        )
        # Negative mentions need an answer; urgent words (accident, court) force one anyway.
        if mention.sentiment is not Sentiment.NEGATIVE and not decision.urgent:
            return decision, None
        if self._router is not None:
            decision = consult_router(self._playbook, decision, mention.text, self._router)
        policy, first_touch, answer, resolution = self._plan(
            decision.department, decision.priority, self._clock.now(), decision.sla_policy
        )
        return decision, CaseOpening(
            department=decision.department,
            priority=decision.priority,
            sla_policy=policy,
            first_touch_due_at=first_touch,
            answer_due_at=answer,
            resolution_due_at=resolution,
            codes=decision.codes,
            route_confidence=(
                decision.confidence if decision.basis is RouteBasis.LEARNED else None
            ),
        )

    async def receive(self, mention: Mention) -> IntakeResult:
        mention = self.prepare(mention)
        decision, opening = self.decide(mention)
        result = await self._cases.intake(replace(mention, codes=decision.codes), opening)
        if self._observe is not None:
            self._observe(mention, result)
        return result
