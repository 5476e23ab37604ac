"""Prometheus metrics of one running Otklik (a registry of its own, so tests can run several).

Several instances on one database: each serves its own /metrics. `otklik_instance_info`
names the instance (config `instance.name`) and `otklik_leader` says whether it leads, both
with an `instance` label; the other series carry no such label, as Prometheus practice has it
(the scrape target's own `instance` label tells them apart; join on it when the name is wanted).
A scrape without `honor_labels` keeps our label as `exported_instance`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.cases.grouping import IntakeResult
from bot.messages.delivery import OutboxWorker
from bot.messages.health import ChannelHealth
from bot.messages.outbox import DeliveryResult, OutboxItem
from bot.model import Mention, Sentiment


class Metrics:
    def __init__(
        self,
        channels: ChannelHealth | None = None,
        instance: str | None = None,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.channels = channels  # read when /metrics is asked
        self.worker: OutboxWorker | None = None  # its claims, read when /metrics is asked
        self._expiries_counted = 0
        self._leading = leading  # read when /metrics is asked; None: no instance lines
        self.registry = CollectorRegistry()
        self.instance = instance
        self.leader: Gauge | None = None
        if instance is not None:
            info = Gauge(
                "otklik_instance_info",
                "This process among several on one database (config instance.name); always 1",
                ["instance"],
                registry=self.registry,
            )
            info.labels(instance).set(1)
            self.leader = Gauge(
                "otklik_leader",
                "1 while this instance leads (runs the scheduled jobs), else 0",
                ["instance"],
                registry=self.registry,
            )
        self.mentions_in = Counter(
            "otklik_mentions_total",
            "Mentions received, by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.mentions_uncertain = Counter(
            "otklik_mentions_uncertain_total",
            "Mentions the sentiment model could not call negative or not (for the triage list)",
            ["source"],
            registry=self.registry,
        )
        self.cases_opened = Counter(
            "otklik_cases_opened_total",
            "Cases opened, by department",
            ["department"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "otklik_outbox_depth", "Messages waiting in the outbox", registry=self.registry
        )
        self.claims_in_flight = Gauge(
            "otklik_outbox_claims_in_flight",
            "Outbox items this instance has claimed and not yet settled",
            registry=self.registry,
        )
        self.lease_expiries = Counter(
            "otklik_outbox_lease_expiries",
            "Claims whose lease ran out (an instance died or stalled), taken over here",
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "otklik_delivery_latency_seconds",
            "From queued to delivered, by transport",
            ["transport"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.sla_breaches = Counter(
            "otklik_sla_breaches_total",
            "SLA deadlines missed, by department and kind",
            ["department", "kind"],
            registry=self.registry,
        )

        labels = ["channel"]
        self.channel_received = Gauge(
            "otklik_channel_last_received_timestamp_seconds",
            "When a mention last came in through the channel (Unix time)",
            labels,
            registry=self.registry,
        )
        self.channel_delivered = Gauge(
            "otklik_channel_last_delivered_timestamp_seconds",
            "When the outbox last delivered through the channel (Unix time)",
            labels,
            registry=self.registry,
        )
        self.channel_failing = Gauge(
            "otklik_channel_delivery_failing",
            "1 while the channel's deliveries fail (since its last successful one), else 0",
            labels,
            registry=self.registry,
        )
        self.channel_failing_since = Gauge(
            "otklik_channel_failing_since_timestamp_seconds",
            "When the channel's current failing began (Unix time); 0 while it works",
            labels,
            registry=self.registry,
        )

    def mention_received(self, mention: Mention, result: IntakeResult) -> None:
        outcome = "duplicate" if result.duplicate else ("case" if result.case else "stored")
        self.mentions_in.labels(mention.source, outcome).inc()
        if mention.sentiment is Sentiment.UNCERTAIN and not result.duplicate:
            self.mentions_uncertain.labels(mention.source).inc()
        if result.case is not None and result.case.mention_count == 1:
            self.cases_opened.labels(result.case.department).inc()

    def delivered(self, item: OutboxItem, result: DeliveryResult, now: datetime) -> None:
        if item.created_at is not None:
            seconds = max(0.0, (now - item.created_at).total_seconds())
            self.delivery_latency.labels(item.transport).observe(seconds)

    def render(self, outbox_depth: int) -> bytes:
        self.outbox_depth.set(outbox_depth)
        if self.worker is not None:
            self.claims_in_flight.set(self.worker.claims_in_flight)
            expiries = self.worker.stats.lease_expiries
            self.lease_expiries.inc(max(0, expiries - self._expiries_counted))
            self._expiries_counted = max(expiries, self._expiries_counted)
        if self.leader is not None and self._leading is not None:
            self.leader.labels(self.instance).set(1 if self._leading() else 0)
        for state in self.channels.states() if self.channels is not None else []:
            name = state.channel
            if state.last_received_at is not None:
                self.channel_received.labels(name).set(state.last_received_at.timestamp())
            if state.last_delivered_at is not None:
                self.channel_delivered.labels(name).set(state.last_delivered_at.timestamp())
            since = state.failing_since
            self.channel_failing.labels(name).set(1 if since is not None else 0)
            self.channel_failing_since.labels(name).set(since.timestamp() if since else 0)
        return generate_latest(self.registry)
