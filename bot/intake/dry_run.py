"""A dry run of intake for one text: what the sentiment model, the routing rules and the
learned router would decide, and why, with nothing stored (`otklik route`, README
"Playbooks"). The same steps as MentionIntake.prepare and decide (bot/intake/intake.py),
with every rule checked rather than the first match only (bot/intake/routing.check_rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.intake.features import extract
from bot.intake.official import Officials
from bot.intake.router import DepartmentRouter, RouterChoice
from bot.intake.routing import (
    RouteDecision,
    RuleCheck,
    Stemmer,
    alarm_words,
    check_rules,
    consult_router,
    route,
)
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.model import ModelClassifier
from bot.model import AuthorLabel, Identity, Mention, Sentiment
from bot.settings.playbook import Playbook


@dataclass(frozen=True, slots=True)
class SentimentReading:
    sentiment: Sentiment  # as a mention would store it
    by: str  # "model" or "lexicon"
    score: float  # the model's p_negative, or the lexicon's sum of weights
    outcome: str  # the model's negative / uncertain / not_negative; the lexicon's sentiment
    signals: tuple[str, ...]  # strongest first
    language: str | None  # given, else detected


@dataclass(frozen=True, slots=True)
class DryRun:
    sentiment: SentimentReading
    official: bool  # official information: stored as neutral, no case
    opens_case: bool  # negative or urgent, and not official
    decision: RouteDecision  # with the learned router consulted when a case would open
    rules: tuple[RuleCheck, ...]
    critical_words: tuple[str, ...]
    urgent_words: tuple[str, ...]
    router: RouterChoice | None  # the learned router's own choice, asked or not by intake

    def as_dict(self) -> dict[str, Any]:
        d, s = self.decision, self.sentiment
        return {
            "sentiment": {
                "sentiment": s.sentiment.value,
                "by": s.by,
                "score": round(s.score, 4),
                "outcome": s.outcome,
                "signals": list(s.signals),
                "language": s.language,
            },
            "official": self.official,
            "opens_case": self.opens_case,
            "department": d.department,
            "priority": d.priority.value,
            "codes": list(d.codes),
            "sla_policy": d.sla_policy,
            "basis": d.basis.value,
            "rule": d.rule_id,
            "critical_words": list(self.critical_words),
            "urgent_words": list(self.urgent_words),
            "rules": [
                {
                    "id": r.rule_id,
                    "department": r.department,
                    "matched": r.matched,
                    "almost": r.almost,
                    "conditions": [
                        {"name": c.name, "met": c.met, "found": list(c.found), "near": list(c.near)}
                        for c in r.conditions
                    ],
                }
                for r in self.rules
                if r.matched or r.almost
            ],
            "router": (
                None
                if self.router is None
                else {
                    "department": self.router.department,
                    "confidence": round(self.router.confidence, 4),
                    "signals": list(self.router.signals),
                }
            ),
        }


def read_sentiment(
    text: str,
    language: str | None,
    model: ModelClassifier | None,
    classifier: SentimentClassifier | None,
) -> SentimentReading:
    """As MentionIntake.prepare reads a mention the source gave no sentiment: the model when
    there is one, else the lexicon; here always with its reasons."""
    if model is not None:
        verdict = model.judge(text, language, explain=True)
        return SentimentReading(
            verdict.sentiment,
            "model",
            verdict.p_negative,
            verdict.outcome.value,
            model.signals(verdict),
            language or verdict.lexicon.language,
        )
    if classifier is None:
        return SentimentReading(Sentiment.NEUTRAL, "none", 0.0, "neutral", (), language)
    result = classifier.classify(text, language)
    return SentimentReading(
        result.sentiment,
        "lexicon",
        result.score,
        result.sentiment.value,
        result.reasons,
        language or result.language,
    )


def dry_run(
    playbook: Playbook,
    text: str,
    source: str,
    received_at: datetime,
    *,
    labels: Iterable[AuthorLabel] = (),
    codes: Iterable[str] = (),
    language: str | None = None,
    stem: Stemmer | None = None,
    model: ModelClassifier | None = None,
    classifier: SentimentClassifier | None = None,
    router: DepartmentRouter | None = None,
    officials: Officials | None = None,
) -> DryRun:
    """What intake would decide for this text from this source; pure, stores nothing."""
    labels, codes = frozenset(labels), tuple(codes)
    reading = read_sentiment(text, language, model, classifier)
    lang = reading.language
    mention = Mention(
        source, "dry-run", text, Identity(source, "dry-run"), received_at, language=lang
    )
    official = (officials or Officials()).speaks_for(mention, labels)
    decision = route(playbook, text, source, codes, labels, lang, stem=stem)
    opens_case = not official and (reading.sentiment is Sentiment.NEGATIVE or decision.urgent)
    if opens_case and router is not None:
        decision = consult_router(playbook, decision, text, router)
    critical, urgent = alarm_words(playbook, text, stem=stem)
    return DryRun(
        reading,
        official,
        opens_case,
        decision,
        tuple(check_rules(playbook, text, source, codes, labels, lang, stem=stem)),
        critical,
        urgent,
        router.choose(extract(text)) if router is not None else None,
    )
