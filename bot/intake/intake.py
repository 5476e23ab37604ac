"""From a mention to a case: route it by the playbook, decide whether it needs an answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from functools import partial

from bot.cases.corrections import Promotion
from bot.cases.grouping import CaseOpening, IntakeResult
from bot.cases.lifecycle import DomainError
from bot.cases.replies import EMAIL_SOURCE, FORM_SOURCE
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.intake.lemmas import Lemmatiser
from bot.intake.official import Officials, as_information
from bot.intake.router import DepartmentRouter
from bot.intake.routing import RouteBasis, RouteDecision, consult_router, route
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.model import ModelClassifier
from bot.model import (
    AuthorLabel,
    Mention,
    Priority,
    Sentiment,
    SentimentSource,
    bounded_attachments,
)
from bot.settings.playbook import Playbook
from bot.sla.calendar import Deadlines
from bot.staff.rights import Actor

_log = logging.getLogger(__name__)

# (department, priority, opened_at, policy override) -> (policy name, deadlines). Injected so
# the SLA calendar owns deadline arithmetic (bot.sla.calendar.plan_deadlines fits).
DeadlinePlanner = Callable[[str, Priority, datetime, str | None], tuple[str, Deadlines]]

# Appeals written to the organisation itself: each one is owed an answer, so it opens a case
# whatever its tone (a polite question is not "negative", yet it waits for a reply).
APPEAL_SOURCES = frozenset({FORM_SOURCE, EMAIL_SOURCE})


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
        officials: Officials | None = None,
        model: ModelClassifier | None = None,
        router: DepartmentRouter | None = None,
    ) -> None:
        self._officials = officials or Officials()
        self._classifier = classifier
        self._model = model  # when given, it decides; the lexicon alone is the fallback
        self._router = router  # for mentions no rule claims; restricted to the configured ones
        self._stem = lemmatiser.lemma if lemmatiser else None
        self._observe = observe  # metrics: every mention from every channel passes here
        self._cases = cases
        self._playbook = playbook
        self._clock = clock
        self._plan = plan

    def prepare(self, mention: Mention) -> Mention:
        """The source's sentiment when it gave one; otherwise Otklik's classifier decides:
        the model (negative, uncertain or not; the score is p_negative) when there is one,
        else the lexicon (its score is the sum of its weights). Attachments beyond the bounds
        every source is held to (bot.model.attachment_problem) are dropped here, whatever the
        adapter did."""
        if mention.attachments:
            bounded = bounded_attachments(mention.attachments)
            if bounded != mention.attachments:
                mention = replace(mention, attachments=bounded)
        if mention.sentiment is not None:
            return mention
        model = self._model  # read once: use_model may swap it between two awaits
        if model is not None:
            verdict = model.judge(mention.text, mention.language)
            if verdict.sentiment is Sentiment.UNCERTAIN and _log.isEnabledFor(logging.INFO):
                _log.info(
                    "uncertain mention %s:%s p=%.2f %s",
                    mention.source,
                    mention.external_id,
                    verdict.p_negative,
                    ", ".join(model.signals(verdict)),
                )
            return replace(
                mention,
                sentiment=verdict.sentiment,
                sentiment_source=SentimentSource.CLASSIFIER,
                sentiment_score=round(verdict.p_negative, 4),
                language=mention.language or verdict.lexicon.language,
            )
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

    @property
    def model(self) -> ModelClassifier | None:
        """The sentiment model, for explanations (/case); None: the lexicon alone decides."""
        return self._model

    def use_model(self, model: ModelClassifier) -> None:
        """From the next mention on, this model decides (a retrained organisation model).
        One assignment: a mention being prepared keeps the model it started with."""
        self._model = model

    def decide(
        self,
        mention: Mention,
        labels: Iterable[AuthorLabel] = (),
        department_hint: str | None = None,
        *,
        explain: bool = True,
    ) -> tuple[RouteDecision, CaseOpening | None]:
        """`labels`: the author card's labels, for the rules that match on them.
        `department_hint`: the department the author chose (the web form), see with_hint.
        `explain`: the decision names the router's signals (nothing stored needs them)."""
        decision = route(
            self._playbook,
            mention.text,
            mention.source,
            mention.codes,
            labels,
            mention.language,
            stem=self._stem,
        )
        # Negative mentions need an answer; urgent words (accident, court) force one anyway,
        # and so does a formal appeal (a letter).
        drill = mention.drill
        if drill is not None:
            # A drill tests the scenario's department: routing words decide nothing else.
            decision = replace(decision, department=drill.department)
        elif department_hint is not None:
            decision = with_hint(decision, department_hint)
        appeal = mention.source in APPEAL_SOURCES
        if mention.sentiment is not Sentiment.NEGATIVE and not decision.urgent and not appeal:
            return decision, None
        if self._router is not None and drill is None:
            decision = consult_router(
                self._playbook, decision, mention.text, self._router, explain=explain
            )
        policy, due = self._plan(
            decision.department, decision.priority, self._clock.now(), decision.sla_policy
        )
        return decision, CaseOpening(
            department=decision.department,
            priority=decision.priority,
            sla_policy=policy,
            reaction_due_at=due.reaction,
            first_touch_due_at=due.first_touch,
            answer_due_at=due.answer,
            resolution_due_at=due.resolution,
            codes=decision.codes,
            route_confidence=(
                decision.confidence if decision.basis is RouteBasis.LEARNED else None
            ),
            drill=drill is not None,
            drill_run_id=drill.run_id if drill is not None else None,
        )

    def plan(
        self,
        mention: Mention,
        labels: frozenset[AuthorLabel] = frozenset(),
        department_hint: str | None = None,
    ) -> tuple[Mention, CaseOpening | None]:
        """The mention as it is to be stored and the case it needs, once its author's labels
        are known (bot/cases/corrections.py IntakePlan). Official information needs none."""
        if self._officials.speaks_for(mention, labels):
            return as_information(mention), None
        # Only the codes and the opening are kept: the router's signals would be thrown away.
        decision, opening = self.decide(mention, labels, department_hint, explain=False)
        codes = decision.codes
        return (mention if codes == mention.codes else replace(mention, codes=codes)), opening

    def official(self, mention: Mention, labels: frozenset[AuthorLabel] = frozenset()) -> Mention:
        """The mention as official information when its source or account is official."""
        return as_information(mention) if self._officials.speaks_for(mention, labels) else mention

    async def receive(self, mention: Mention, department_hint: str | None = None) -> IntakeResult:
        """`department_hint`: a configured department the author chose (see with_hint)."""
        mention = self.prepare(mention)
        plan = (
            self.plan
            if department_hint is None
            else partial(self.plan, department_hint=department_hint)
        )
        # Routed inside the case service's transaction, where the author's card is known.
        result = await self._cases.intake(mention, plan=plan)
        if self._observe is not None:
            self._observe(mention, result)
        return result

    async def promote(
        self, mention_id: int | None, url: str | None, actor: Actor
    ) -> Promotion | DomainError | None:
        """/negative: a stored mention that opened no case is negative after all (staff say
        so); it opens or joins a case as at intake. None: no such mention."""
        return await self._cases.promote(mention_id, url, actor, self.plan)


def with_hint(decision: RouteDecision, department: str) -> RouteDecision:
    """The author's own choice of department (the web form's optional field) weighs like a
    routing rule: a rule of the playbook claims the mention before it does (the organisation
    knows its own split of duties better than a citizen guessing from a list), but it beats
    the default and stands before the learned router, which overrules it only as it would a
    rule (`learned.overrule_confidence`). Urgent words still raise the priority."""
    if decision.basis is not RouteBasis.DEFAULT or decision.department == department:
        return decision
    # The default's SLA policy is the coordination centre's; the chosen department's applies.
    return replace(decision, department=department, sla_policy=None, basis=RouteBasis.CITIZEN)
