"""The composition root: builds the store, services, transports, scheduler and HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.cases.cards import case_of_public_ref
from bot.cases.codes import CodeBook
from bot.cases.erasure import Erasure
from bot.cases.grouping import IntakeResult
from bot.cases.replies import EMAIL_CHAT, EMAIL_TRANSPORT, VK_TRANSPORT, ReplyCatalog
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.chat.checks import ChatProblems, configured_chats
from bot.chat.inbound import ChatAdapter, ChatServices, Inbound
from bot.chat.seen import ChatLog
from bot.clock import Clock, SystemClock
from bot.crisis.service import CrisisService
from bot.drills.service import DrillService
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.intake.lemmas import Lemmatiser
from bot.intake.official import Officials
from bot.intake.router import load_router
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.learning import RetrainRequest
from bot.intake.sentiment.lexicon import lexicon_dir, load_lexicon
from bot.intake.sentiment.model import load_model_classifier, model_file, playbook_band
from bot.intake.sentiment.training import DEFAULT_CORPUS
from bot.intake.triage import TriageBoard
from bot.leadership import Leadership
from bot.messages.delivery import OutboxWorker, RetryPolicy
from bot.messages.health import ChannelHealth
from bot.messages.outbox import DeliveryResult, OutboxItem, Transport
from bot.messages.texts import Texts, texts_for
from bot.model import Mention, Priority, Sentiment
from bot.ports import SendSlots
from bot.reports.channels import ChannelWatch
from bot.reports.digest import DigestService
from bot.settings.config import Config
from bot.settings.playbook import Playbook
from bot.sla.calendar import Deadlines, plan_deadlines
from bot.sla.coverage import CalendarWatch
from bot.sla.engine import SlaEngine
from bot.sla.service import SlaService
from bot.staff.directory import SANDBOX, Directory
from handlers.email.reader import MailboxReader
from handlers.email.transport import EmailTransport
from handlers.form.guard import load_or_create_secret
from handlers.form.web import FormWeb
from handlers.ingest.api import Api
from handlers.ingest.feeds import FeedPoller
from handlers.jobs import LeaderScheduler, add_job
from handlers.jobs.calendar import CalendarJobs
from handlers.jobs.channels import ChannelJobs
from handlers.jobs.crisis import CrisisJobs
from handlers.jobs.digest import DigestJobs, digest_recipients
from handlers.jobs.drills import DrillJobs
from handlers.jobs.heartbeat import JOB_ID as HEARTBEAT_JOB
from handlers.jobs.heartbeat import SchedulerHeartbeat
from handlers.jobs.model import ModelJobs
from handlers.jobs.publication import PublicationJobs
from handlers.jobs.retention import RetentionJobs
from handlers.jobs.sla import JOB_ID as SLA_JOB
from handlers.jobs.sla import SlaJobs
from handlers.metrics import Metrics
from handlers.sandbox.adapter import SandboxAdapter
from handlers.sandbox.feeds import DrillSamples
from handlers.vk.callback import VkCallback
from handlers.vk.intake import VkIntake
from handlers.vk.transport import VkTransport
from store.db import Database, StoreInUse, hold_sqlite_file
from store.leader import LeaderElector
from store.send_slots import SqlSendSlots

log = logging.getLogger("otklik")

TRIAGE_CHECK_S = 60.0
FORM_LOCALES = ("ru", "en")
_Result = TypeVar("_Result")


@runtime_checkable
class ServesWebhook(Protocol):
    """A messenger that takes updates by webhook on the API's HTTP server (Telegram in
    webhook mode): its route goes in before the server starts, the webhook is set after."""

    def add_webhook_routes(self, app: web.Application) -> None: ...

    async def open_webhook(self) -> None: ...


class CannotStart(Exception):
    """A setting only the network can check is wrong (a Matrix room alias that names no
    room): nothing starts, and the message says what to fix."""


async def with_room_ids(config: Config) -> Config:
    """The config with its Matrix room aliases resolved to room ids (asked of the homeserver
    once): what App needs."""
    if not config.matrix_enabled or not config.matrix_room_aliases:
        return config
    from handlers.matrix.aliases import RoomAliasError, resolve_room_aliases

    try:
        return await resolve_room_aliases(config)
    except RoomAliasError as error:
        raise CannotStart(str(error)) from None


class App:
    """One running Otklik. `start` and `stop` are idempotent enough for tests to restart it."""

    def __init__(
        self,
        config: Config,
        playbook: Playbook,
        clock: Clock | None = None,
        transports: Mapping[str, Transport] | None = None,
    ) -> None:
        if config.matrix_enabled and config.matrix_room_aliases:
            # Keyed by room id everywhere: an alias here would never match an event's room.
            raise CannotStart("Matrix room aliases must be resolved first (with_room_ids)")
        self.config = config
        self.playbook = playbook
        self.clock = clock or SystemClock()
        self.texts: Texts = texts_for(config.playbooks.templates, config.locale)
        self.database = Database(config.database.url, echo=config.database.echo)
        # What must run once among instances waits for this (bot/leadership.py). SQLite has a
        # single process, which leads from the start; on PostgreSQL an advisory lock decides
        # (store/leader.py), asked first in `start`.
        self.leadership = Leadership(leading=self.database.is_sqlite)
        self._elector: LeaderElector | None = None
        self._elector_task: asyncio.Task[None] | None = None
        self._leader_task: asyncio.Task[None] | None = None
        self.transports: dict[str, Transport] = dict(transports or {})
        # Instances on one PostgreSQL database share the messengers' flood limits through it;
        # a single process on SQLite keeps them in memory.
        self.send_slots = None if self.database.is_sqlite else SqlSendSlots(self.database)
        # The messengers: each translates its updates for bot/chat/inbound.py and delivers
        # the outbox. Injected transports (tests) come without an adapter.
        self.adapters: list[ChatAdapter] = (
            []
            if transports is not None
            else _adapters(
                config, playbook, self.texts, self.database, self.leadership, self.send_slots
            )
        )
        for adapter in self.adapters:
            self.transports[adapter.name] = adapter.transport
        # The VK community page: its transport publishes approved answers there (handlers/vk).
        if config.vk is not None and config.vk.enabled and VK_TRANSPORT not in self.transports:
            self.transports[VK_TRANSPORT] = VkTransport(config.vk, self.texts)
        if config.email_enabled and EMAIL_TRANSPORT not in self.transports:
            self.transports[EMAIL_TRANSPORT] = _email_transport(
                config, playbook, self.texts, self.clock, self._mention
            )
        self.directory = Directory(config, frozenset(self.transports), self.clock)
        # Every channel's health, fed by intake (_mention_received) and the outbox outcomes.
        self.channels = ChannelHealth(s.name for s in config.api.sources)
        self.metrics = Metrics(
            self.channels, instance=config.instance_name, leading=lambda: self.leadership.leading
        )
        self.worker = OutboxWorker(
            self.database.uow,
            self.transports,
            self.clock,
            RetryPolicy(config.outbox.base_retry_s, config.outbox.max_retry_s),
            poll_interval_s=config.outbox.poll_interval_s,
            on_delivered=self._delivered,
            # Queue messages go to staff chats only, never where citizens read.
            queue_chats=self.directory.is_work_chat,
            on_failed=self._delivery_failed,
            instance=config.instance_name,
            lease_s=config.outbox.lease_s,
            shared=not self.database.is_sqlite,
            leading=lambda: self.leadership.leading,  # queue messages: the leader's alone
        )
        self.metrics.worker = self.worker
        self.sla_engine = SlaEngine(playbook, config.tz)  # pure: the SLA clock's decisions
        self.replies = ReplyCatalog(playbook, config.locale, config.organisation, self.directory)
        self.cases = CaseService(
            self.database.uow,
            self.clock,
            self.directory,
            config.tz,
            on_outbox=self.worker.wake,
            replies=self.replies,
            coordination=config.coordination_department,
            policy=playbook.routing,
            sla=self.sla_engine,
            on_timers=self._timer_planned,
            codes=CodeBook(playbook.codes, config.locale),
            approval=playbook.approval,
        )
        # A cluster's answer on its card as replies go out (bot/cases/progress.py).
        self.publication_jobs = PublicationJobs(self.cases.progress)
        # An approved answer its source refused for good: the department is told why.
        self.worker.on_refused = self.cases.publication_refused
        self.erasure = Erasure(self.database.uow, self.clock, self.cases)
        self.retention_jobs = RetentionJobs(self.erasure, config.retention, config.tz)
        self.crises = CrisisService(
            self.database.uow,
            self.clock,
            self.directory,
            playbook,
            config.tz,
            config.organisation,
            on_outbox=self.worker.wake,
            leadership=digest_recipients(config, self.transports),
            locale=config.locale,
        )
        self.crisis_jobs = CrisisJobs(self.crises, leading=lambda: self.leadership.leading)
        self.digests = DigestService(
            self.database.reader,  # seconds of aggregates must not stall intake
            self.clock,
            self.directory,
            ZoneInfo(config.digest.timezone) if config.digest.timezone else config.tz,
            digest_recipients(config, self.transports),
            on_outbox=self.worker.wake,
            translate=self.texts.t,
            checklist_steps=len(playbook.crisis.checklist),
            code_title=partial(playbook.code_title, locale=config.locale),
        )
        self.digest_jobs = DigestJobs(self.digests, self.texts, config.digest)
        classifier = SentimentClassifier(load_lexicon(lexicon_dir(config)))
        # The organisation's own model when it has one; None: the lexicon alone decides.
        sentiment_model = load_model_classifier(playbook, classifier, config.model.path)
        self.intake = MentionIntake(
            self.cases,
            playbook,
            self.clock,
            self._plan_deadlines,
            self._mention_received,
            classifier=classifier,
            lemmatiser=Lemmatiser(),
            officials=Officials.from_config(config),
            model=sentiment_model,
            router=load_router(config),  # loaded once: ~1 s, a few MB
        )
        # Uncertain mentions wait for a person on one message in the coordination chat.
        coordination = config.coordination_department
        self.triage = TriageBoard(
            self.database.uow,
            self.clock,
            self.cases,
            self.intake,
            coordination,
            lambda: self.directory.destinations(coordination),
            config.triage_skipped_sources,
            on_outbox=self.worker.wake,
        )
        self.drills = DrillService(
            self.database.uow,
            self.clock,
            playbook,
            self.directory,
            config.locale,
            config.tz,
            intake=self.intake,
            on_outbox=self.worker.wake,
            crises=self.crises,
        )
        self.drill_jobs = DrillJobs(self.drills)
        # Warns before a working calendar runs out of known years (bot/sla/coverage.py).
        self.calendar_jobs = CalendarJobs(
            CalendarWatch(
                self.database.uow,
                self.clock,
                self.directory,
                playbook,
                config.tz,
                on_outbox=self.worker.wake,
            ),
            config.tz,
        )
        self.answers = Answers(
            self.cases,
            self.directory,
            self.texts,
            self.crises,
            digests=self.digests,
            intake=self.intake,  # /case explains with the model intake uses now
            triage=self.triage,
            erasure=self.erasure,
            drills=self.drills,
            channels=self.channels,
        )
        self.channel_jobs = ChannelJobs(
            ChannelWatch(
                self.database.uow,
                self.clock,
                self.directory,
                self.channels,
                config.tz,
                on_outbox=self.worker.wake,
            )
        )
        self.model_jobs = ModelJobs(
            self.database.reader,
            self.intake,
            classifier,
            RetrainRequest(
                corrections=(),
                corpus=DEFAULT_CORPUS,
                shipped_model=model_file(playbook),
                organisation_model=config.model.path,
                lexicon=lexicon_dir(config),
                band=playbook_band(playbook),
            ),
            config.model.retrain_cron,
            config.tz,
        )
        self.inbound = Inbound(self.cases, self.answers, self.directory, self.texts, self.crises)
        self.chats = ChatLog(self.database.uow, self.clock)  # the groups updates come from
        # Every instance schedules every job; a job runs where the instance leads, except
        # the SLA clock (its timers are claimed one by one) and the heartbeat (handlers/jobs).
        self.scheduler = LeaderScheduler(
            self.leadership, every_instance={SLA_JOB, HEARTBEAT_JOB}, timezone=config.tz
        )
        self.heartbeat = SchedulerHeartbeat()
        self.sla = SlaService(
            self.database.uow,
            self.clock,
            self.directory,
            self.sla_engine,
            config.tz,
            on_outbox=self.worker.wake,
            # Leadership reads the digest: its chats get leadership's escalation notices too.
            leadership=digest_recipients(config, self.transports),
            codes=self.cases.codes,
        )
        self.sla_jobs = SlaJobs(self.scheduler, self.sla, self.clock)
        # Callback API events stored by the endpoint become mentions here, after VK's "ok".
        self.vk_intake: VkIntake | None = None
        if config.vk is not None and config.vk.enabled:
            vk = self.transports.get(VK_TRANSPORT)
            self.vk_intake = VkIntake(
                self.database,
                self.intake,
                self._bulk_intake(),
                self.clock,
                config.vk.group_id,
                names=vk.api.names_of if isinstance(vk, VkTransport) else None,
            )
        self.mailbox: MailboxReader | None = None  # the e-mail channel's reader
        if config.email is not None and config.email_enabled:
            self.mailbox = MailboxReader(
                config.email, self.intake.receive, self.clock, self.texts, self._thread_of
            )
        self.feeds: FeedPoller | None = None
        if config.feeds:
            self.feeds = FeedPoller(config.feeds, self.intake, self.cases, self.clock)
        # Classifying and routing a batch runs here, off the event loop (bot/intake/bulk.py).
        # Threads, not processes, by measurement (README, "Crash safety and runtime"); one
        # thread: the GIL makes two classifications at once no faster.
        self._cpu: ThreadPoolExecutor | None = None
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.api: Api | None = None  # once started
        self._metrics_runner: web.AppRunner | None = None
        self.metrics_address: tuple[str, int] | None = None  # where /metrics of its own is

    def health(self) -> str | None:
        """None while the bot can do its work; otherwise why not (/healthz answers 503)."""
        task = self._worker_task
        if task is None or task.done():
            return "outbox worker is not running"
        # A follower is healthy: its scheduler beats even though it runs no leader's job.
        return self.worker.health() or self.heartbeat.problem(self.scheduler)

    def adapter(self, name: str) -> ChatAdapter | None:
        """The running messenger of that transport, if it is configured."""
        return next((a for a in self.adapters if a.name == name), None)

    async def start(self) -> None:
        newer = await self.database.upgrade_at_start()
        if newer is not None:
            log.warning(
                "the database is at revision %s, newer than this release knows: a rolling "
                "upgrade is under way; this instance runs on it as it is",
                newer,
            )
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otklik-classify")
        self._warn_about_missing_transports()
        await self.cases.ensure_cards()
        self._stop.clear()
        self.publication_jobs.start()
        self._worker_task = asyncio.create_task(self.worker.run(self._stop), name="outbox")
        self.scheduler.start()
        self.heartbeat.schedule(self.scheduler)
        await self._start_sla()
        # Scheduled on every instance, run on the leader (LeaderScheduler).
        self._start_crisis()
        self._start_triage()
        self.digest_jobs.schedule(self.scheduler)
        self.model_jobs.schedule(self.scheduler)
        self.retention_jobs.schedule(self.scheduler)
        self.calendar_jobs.schedule(self.scheduler)
        self.channel_jobs.schedule(self.scheduler)
        self.drill_jobs.schedule(self.scheduler)
        if self.feeds is not None:
            self.feeds.schedule(self.scheduler)
        services = ChatServices(
            self.inbound,
            self.cases,
            self.directory,
            self.texts,
            self.clock,
            self.intake,
            chats=self.chats,
            problems=ChatProblems(self.cases, self.directory, self.texts),
        )
        for adapter in self.adapters:
            await adapter.start(services)
        # After the adapters: a catch-up's messages find the rooms joined.
        await self._start_leading()
        await self._start_api()
        log.info(
            self.texts.t(
                "startup.ready",
                transports=", ".join(self.transports) or "—",
                listen=self.config.api.listen,
            )
        )

    async def stop(self) -> None:
        # The worker finishes what it has in flight while the transports' sessions are open;
        # what is still queued stays in the outbox for the next start.
        await self._stop_following()  # no leader's loop starts while they are being stopped
        if self.feeds is not None:
            await self.feeds.stop()  # no new mentions while the rest shuts down
        if self.vk_intake is not None:
            await self.vk_intake.stop()
        if self.mailbox is not None:
            await self.mailbox.stop()
        await self.crisis_jobs.stop()
        await self.model_jobs.stop()
        await self.triage.stop()
        await self._resign()  # the leader's loops are stopped: another instance takes over
        self._stop.set()
        if self._worker_task is not None:
            await self._worker_task
            self._worker_task = None
        await self.publication_jobs.stop()  # after the worker: its last deliveries are counted
        for adapter in self.adapters:
            await adapter.stop()
        vk = self.transports.get(VK_TRANSPORT)
        if isinstance(vk, VkTransport):
            await vk.close()
        await self.chats.drain()
        await self.sla_jobs.stop()  # before the database goes: a run may be writing
        await self.scheduler.stop()  # so may the other jobs' runs
        for runner in (self._runner, self._metrics_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._metrics_runner = None
        self.metrics_address = None
        if self._cpu is not None:
            self._cpu.shutdown(wait=False, cancel_futures=True)  # its thread ends after its batch
            self._cpu = None
        if self.send_slots is not None:
            await self.send_slots.close()
        await self.database.dispose()

    async def _start_leading(self) -> None:
        """On PostgreSQL: ask for the lock once now (a lone instance leads before the API
        opens), then keep asking (store/leader.py). Whenever this instance comes to lead it
        catches up and starts the leader's loops; on losing, it stops them."""
        if not self.database.is_sqlite:
            self._elector = LeaderElector(
                self.database.url,
                self.config.instance_name,
                self.leadership.set,
                check_s=self.config.instance.leader_check_s,
            )
            await self._elector.attempt()
            self._elector_task = asyncio.create_task(
                self._elector.run(self._stop), name="leader-elector"
            )
        if self.leadership.leading:
            await self._gained()
        self._leader_task = asyncio.create_task(self._follow_leadership(), name="leadership")

    async def _follow_leadership(self) -> None:
        while True:
            await self.leadership.until_lost()
            log.info("instance %s: follower now", self.config.instance_name)
            await self._lost()
            await self.leadership.until_leading()
            await self._gained()

    async def _gained(self) -> None:
        """Leading now (at start, or in place of a leader that died): what fell due while
        nobody led is caught up once, and the leader's own loops start."""
        log.info("instance %s: leading", self.config.instance_name)
        catch_ups: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("triage list", self.triage.refresh),  # what arrived meanwhile, or a new chat
            ("calendar check", self.calendar_jobs.run),
            # Tonight's digest if it fell due meanwhile: sent once whoever led at its time
            # (the digest's mark and the outbox's idempotency key, handlers/jobs/digest.py).
            ("digest catch-up", self.digest_jobs.catch_up),
            ("crisis evaluation", self.crisis_jobs.run),
        ]
        for name, catch_up in catch_ups:
            try:
                await catch_up()
            except Exception:  # the others still run; the scheduled job tries again
                log.exception("%s on gaining leadership failed", name)
        if self.mailbox is not None:
            self.mailbox.start()
        if self.vk_intake is not None:
            self.vk_intake.start()  # first the events stored while nobody took them

    async def _lost(self) -> None:
        """Not leading any more: the leader's loops stop (scheduled jobs skip by themselves,
        the Matrix sync pauses by itself)."""
        if self.vk_intake is not None:
            await self.vk_intake.stop()
        if self.mailbox is not None:
            await self.mailbox.stop()

    async def _stop_following(self) -> None:
        """No more tries for the lock and no more reactions to changes (a lock held is kept
        until `_resign`)."""
        for task in (self._leader_task, self._elector_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._leader_task = self._elector_task = None

    async def _resign(self) -> None:
        if self._elector is not None:
            await self._elector.close()  # the lock goes with the session
            self._elector = None

    async def _start_sla(self) -> None:
        # Timers that came due while the bot was down fire now, once; then one job waits
        # for the next.
        await self.sla_jobs.start()

    def _timer_planned(self, due: datetime) -> None:
        if hasattr(self, "sla_jobs"):  # not during __init__
            self.sla_jobs.timer_planned(due)

    def _start_crisis(self) -> None:
        # After the scheduler: the first count runs CHECK_EVERY_S after start, or sooner
        # when a negative mention arrives.
        self.crisis_jobs.schedule(self.scheduler)

    def _start_triage(self) -> None:
        # Mentions usually poke the list as they arrive; this also catches what another
        # process stored (`otklik import`) and anything a failed refresh left behind.
        add_job(
            self.scheduler, self._triage_check, "interval", job_id="triage", seconds=TRIAGE_CHECK_S
        )

    async def _triage_check(self) -> None:
        self.triage.poke()  # on the event loop (a plain function would run in a thread)

    def _delivered(self, item: OutboxItem, result: DeliveryResult) -> None:
        now = self.clock.now()
        self.metrics.delivered(item, result, now)
        self.channels.delivered(item.transport, now)
        self.publication_jobs.delivered(item, result)

    def _delivery_failed(self, item: OutboxItem, error: Exception, permanent: bool) -> None:
        reason = f"{type(error).__name__}: {error}"
        self.channels.failed(item.transport, self.clock.now(), reason, permanent)

    def _mention_received(self, mention: Mention, result: IntakeResult) -> None:
        self.channels.received(mention.source, self.clock.now())
        self.metrics.mention_received(mention, result)
        self.crisis_jobs.mention_received(mention, result)
        if (
            mention.sentiment is Sentiment.UNCERTAIN
            and result.case is None
            and not result.duplicate
            # The leader keeps the list: a follower's mention waits for its minute check.
            and self.leadership.leading
        ):
            self.triage.poke()

    async def _thread_of(self, answer_ids: Sequence[str]) -> str | None:
        """The story of the case one of our e-mail answers (by Message-ID) belongs to: a
        reply to an answer joins that case even when it did not start with a letter (a
        web-form appeal). None: none of them is ours, or that case's first mention has no
        story."""
        async with self.database.uow() as uow:
            for answer_id in answer_ids:
                ref = await uow.refs.find(EMAIL_TRANSPORT, EMAIL_CHAT, f"<{answer_id}>")
                case_id = case_of_public_ref(ref) if ref else None
                if case_id is not None:
                    first = (await uow.mentions.first_of_cases([case_id])).get(case_id)
                    return first.story_id if first is not None else None
        return None

    async def _mention(self, mention_id: int) -> Mention | None:
        """A stored mention with its sealed personal values: what the e-mail transport
        answers."""
        async with self.database.uow() as uow:
            return await uow.mentions.get(mention_id)

    def _bulk_intake(self) -> BulkIntake:
        """Batches (the HTTP API's, VK's events): classified off the event loop."""
        return BulkIntake(
            self.database.uow,
            self.intake,
            self.cases,
            self.clock,
            self.playbook.routing.author_labels,
            self._mention_received,
            offload=self._offload,
        )

    def _offload(self, work: Callable[[], _Result], /) -> Awaitable[_Result]:
        return asyncio.get_running_loop().run_in_executor(self._cpu, work)

    def _warn_about_missing_transports(self) -> None:
        if not set(self.transports) - {SANDBOX}:
            log.warning(self.texts.t("startup.no_transport"))

    def _plan_deadlines(
        self, department: str, priority: Priority, opened_at: datetime, policy: str | None
    ) -> tuple[str, Deadlines]:
        name, due = plan_deadlines(
            self.playbook, department, priority, opened_at, self.config.tz, policy
        )
        return name, due

    async def _start_api(self) -> None:
        api = Api(
            self.config,
            self.database,
            self.cases,
            self.intake,
            self.clock,
            list(self.transports),
            self.metrics,
            self._bulk_intake(),
            health=self.health,
        )
        self.api = api
        served = api.app()
        if self.vk_intake is not None and self.config.vk is not None:
            VkCallback(self.config.vk, self.database, self.clock, self.vk_intake.poke).add_routes(
                served
            )
        if self.config.form.enabled:
            (await self._form()).add_routes(served)
        sandbox = self.sandbox
        if sandbox is not None:
            sandbox.add_routes(served)
        webhooks = [a for a in self.adapters if isinstance(a, ServesWebhook)]
        for adapter in webhooks:
            adapter.add_webhook_routes(served)
        self._runner = web.AppRunner(served, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.api.host, self.config.api.port)
        await site.start()
        for adapter in webhooks:
            await adapter.open_webhook()  # Telegram may send updates now: the endpoint listens
        await self._start_metrics(api)
        if sandbox is not None:
            log.info(self.texts.t("startup.sandbox", address=sandbox.address()))

    async def _form(self) -> FormWeb:
        """The citizens' web form, its words in both languages whatever the bot's locale."""
        settings = self.config.form
        secret = settings.secret or await asyncio.to_thread(
            load_or_create_secret, settings.secret_file
        )
        templates = self.config.playbooks.templates
        texts = {locale: texts_for(templates, locale) for locale in FORM_LOCALES}
        return FormWeb(self.config, self.intake, self.clock, secret, texts)

    async def _start_metrics(self, api: Api) -> None:
        """/metrics on its own address (config `metrics.listen`), off the API's port."""
        host, port = self.config.metrics.host, self.config.metrics.port
        if host is None or port is None:
            return
        runner = web.AppRunner(api.metrics_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            # Metrics help watch the bot; a port taken by something else must not stop it.
            log.error("metrics: cannot listen on %s: %s", self.config.metrics.listen, error)
            await runner.cleanup()
            return
        self._metrics_runner = runner
        self.metrics_address = _bound_address(runner)

    @property
    def sandbox(self) -> SandboxAdapter | None:
        """The browser chat, when it runs (handlers/sandbox)."""
        adapter = self.adapter(SANDBOX)
        return adapter if isinstance(adapter, SandboxAdapter) else None


def _bound_address(runner: web.AppRunner) -> tuple[str, int] | None:
    """The address a site really listens on (a configured port 0 means any free one)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return str(address[0]), int(address[1])
    return None


def _email_transport(
    config: Config,
    playbook: Playbook,
    texts: Texts,
    clock: Clock,
    mention: Callable[[int], Awaitable[Mention | None]],
) -> Transport:
    """Answers by e-mail (handlers/email), closed with the playbook's signature."""
    assert config.email is not None
    signature = playbook.signature.get(config.locale) if playbook.signature else ""
    return EmailTransport(config.email, mention, texts, clock, signature)


def _adapters(
    config: Config,
    playbook: Playbook,
    texts: Texts,
    database: Database,
    leadership: Leadership,
    send_slots: SendSlots | None = None,
) -> list[ChatAdapter]:
    """The configured messengers. Each one's library is imported only where it is configured:
    aiogram alone weighs some 150 MB, matrix-nio 35 MB. `send_slots`: the flood limits shared
    with other instances (PostgreSQL)."""
    adapters: list[ChatAdapter] = []
    if config.telegram is not None and config.telegram.enabled:
        from handlers.telegram.adapter import TelegramAdapter

        adapters.append(
            TelegramAdapter(
                config.telegram,
                texts,
                configured_chats(config, "telegram"),
                database=database,
                leadership=leadership,  # long polling only while this instance leads
                instance=config.instance_name,
                send_slots=send_slots,
            )
        )
    if config.matrix is not None and config.matrix.enabled:
        from handlers.matrix.adapter import MatrixAdapter

        adapters.append(MatrixAdapter(config, texts, leadership))
    if config.sandbox_enabled:
        drills = DrillSamples(
            playbook.drills.values(), config.locale, texts.t("sandbox.page.drills")
        )
        adapters.append(SandboxAdapter(config, texts, feeds=[drills]))
    return adapters


# Young objects are collected once this many have been made (CPython's default is 700). A
# batch of 1,000 mentions makes hundreds of thousands of short-lived ones: at 700 the
# collector ran hundreds of times a second and promoted the survivors of each pass, which the
# older generations then walked again (a tenth of a batch's CPU on PostgreSQL).
YOUNG_COLLECTION = 20_000


def settle_collector() -> None:
    """Once the App has started: start-up objects live forever, so they are kept out of full
    collections' pauses, and young objects are collected less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


async def run_forever(config: Config, playbook: Playbook) -> None:
    try:  # before anything reads or writes the database: kept until the process ends
        hold_sqlite_file(config.database.url)
    except StoreInUse as error:
        raise CannotStart(str(error)) from None
    app = App(await with_room_ids(config), playbook)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    settle_collector()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await app.stop()
