"""What the chat commands answer, as neutral views. bot/chat/inbound.py parses the commands
of every transport and sends these answers.

status, case, escalate, negative, duty, help, whoami, ids: the same words and the same checks
everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.cases import publication
from bot.cases.cards import attachment_lines, card_view
from bot.cases.erasure import Erasure
from bot.cases.lifecycle import ActionRequest, DomainError, NoRight
from bot.cases.outcomes import WrongChat
from bot.cases.service import CaseService, CaseThread
from bot.crisis.service import CrisisService
from bot.drills.service import DrillRefusal, DrillService
from bot.intake.intake import MentionIntake
from bot.intake.sentiment.model import ModelClassifier
from bot.intake.triage import TriageBoard
from bot.messages.health import ChannelHealth
from bot.messages.texts import Texts
from bot.messages.views import NoticeView, View, format_time, notice_view, page_view
from bot.model import SYSTEM_ACTOR, Action, Mention, Sentiment, SentimentSource
from bot.reports.digest import DigestService
from bot.staff.directory import Directory
from bot.staff.rights import Actor, may_run_drill, may_see, sees_every_department

COMMANDS = (
    "status",
    "digest",
    "case",
    "escalate",
    "negative",
    "notnegative",
    "official",
    "duty",
    "help",
    "whoami",
    "ids",
    "merge",
    "split",
    "forget",
    "drill",
)
# Commands that say who and where you are: answered in private chats and to staff anywhere.
ID_COMMANDS = frozenset({"whoami", "ids"})
MAX_EVENTS = 40  # /case shows the latest events; the rest stays in the database
MAX_JOINED = 10  # /case lists the newest joined mentions, each with its /split
# /case lists the mentions of a published cluster only a person can answer: their links, as
# many as a message holds (the card and the notice under it name the first few).
MAX_BY_HAND = 60


@dataclass(frozen=True, slots=True)
class ChatIds:
    """What /ids and /whoami show: the ids an administrator copies into the config."""

    transport: str
    chat: str | None  # None in a private chat, whose id is the person's own
    thread: str | None  # a Telegram forum topic, a Matrix thread's root event
    person: str  # a Telegram user id, a Matrix id, a sandbox staff id

    def params(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "chat": self.chat,
            "thread": self.thread,
            "person": self.person,
        }


class Answers:
    def __init__(
        self,
        cases: CaseService,
        directory: Directory,
        texts: Texts,
        crises: CrisisService | None = None,
        digests: DigestService | None = None,
        intake: MentionIntake | None = None,
        sentiment: ModelClassifier | None = None,
        triage: TriageBoard | None = None,
        erasure: Erasure | None = None,
        drills: DrillService | None = None,
        channels: ChannelHealth | None = None,
    ) -> None:
        self._channels = channels  # /status: how each channel does, for who sees everything
        self._drills = drills  # /drill start and stop
        self._erasure = erasure  # /forget: an author's personal data erased
        self._triage = triage  # /negative and /notnegative keep the triage list up to date
        self._intake = intake  # /negative opens a case as intake would
        self._sentiment = sentiment  # /case: why the model called the mention negative
        self._digests = digests  # /digest: today so far, for leadership and duty
        self._crises = crises  # open crises head /status
        self._cases = cases
        self._directory = directory
        self._texts = texts

    def help(self) -> View:
        return page_view("help.html.j2", {})

    def duty(self) -> View:
        """Who is on duty now and until the next handover (none when no rota says)."""
        now = self._cases.now()
        shift = self._directory.duty_shift(now)
        names = ", ".join(self._directory.name_of(s) or s for s in shift.staff)
        return notice_view("ui.duty", names=names, until=format_time(shift.until, self._cases.tz))

    def ids(self, ids: ChatIds) -> View:
        return notice_view("ui.ids", **ids.params())

    def whoami(self, actor: Actor, ids: ChatIds) -> View:
        t = self._texts.t
        roles = [
            f"{self._directory.department_name(dept)}: "
            + ", ".join(t(f"role.{r.value}") for r in sorted(rs))
            for dept, rs in actor.dept_roles.items()
            if rs
        ]
        roles += [t(f"role.{r.value}") for r in sorted(actor.global_roles)]
        return notice_view("ui.whoami", name=actor.name, roles="; ".join(roles), **ids.params())

    async def status(self, actor: Actor, department: str | None) -> View:
        """Open, overdue and at-risk cases. A department's chat sees its own department.
        Elsewhere (private chats, leadership's chats) the duty officer, leadership and
        administrators see every department, and so does the coordination centre's staff in
        the coordination chat; everyone else sees the departments they work in."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        coordination = self._directory.coordination
        everything = False  # channels are the whole bot's: shown with every department
        if department is not None and department != coordination:
            wanted = [department]
        elif sees_every_department(actor, coordination if department else None):
            wanted = self._directory.department_ids()
            everything = True
        else:
            wanted = [d for d in self._directory.department_ids() if actor.roles_in(d)]
        now = self._cases.now()
        rows = {row.department: row for row in await self._cases.status()}
        departments = []
        for dept in wanted:
            row = rows.get(dept)
            oldest = row.oldest_new_at if row else None
            departments.append(
                {
                    "name": self._directory.department_name(dept),
                    "open": row.open if row else 0,
                    "overdue": row.overdue if row else 0,
                    "at_risk": row.at_risk if row else 0,
                    # seconds, said in words by the template (`|duration`)
                    "oldest_waiting": _seconds(now - oldest) if oldest else None,
                }
            )
        context = {
            "generated_at": format_time(now, self._cases.tz),
            "departments": departments,
            "crises": await self._crises.status_lines() if self._crises else [],
            "channels": self._channel_lines(now) if everything else [],
        }
        return page_view("status.html.j2", context)

    def _channel_lines(self, now: datetime) -> list[dict[str, Any]]:
        if self._channels is None:
            return []
        return [
            {
                "id": state.channel,
                "failing_for": _whole(state.failing_for(now)),
                "error": state.last_error,
                "delivered": state.last_delivered_at is not None,
                "received_ago": (
                    _seconds(now - state.last_received_at) if state.last_received_at else None
                ),
            }
            for state in self._channels.states()
        ]

    async def drill(self, actor: Actor, args: str) -> View:
        """/drill start <scenario>, /drill stop: the duty officer and administrators."""
        drills = self._drills
        if drills is None or not may_run_drill(actor):
            return notice_view("ui.no_rights")
        scenarios = ", ".join(sorted(drills.scenarios)) or "—"
        verb, _, rest = args.strip().partition(" ")
        match verb.casefold():
            case "start" if rest.strip():
                started = await drills.start(rest.strip(), actor.id)
                if started is DrillRefusal.UNKNOWN_SCENARIO:
                    return notice_view(
                        "drill.unknown_scenario", scenario=rest.strip(), scenarios=scenarios
                    )
                if isinstance(started, DrillRefusal):
                    running = await drills.running()
                    run_id = running.id if running else 0
                    return notice_view("drill.already_running", run_id=run_id)
                scenario = started.scenario
                return notice_view(
                    "drill.started",
                    run_id=started.run.id,
                    title=scenario.title.get(self._texts.locale),
                    mentions=started.mentions,
                    minutes=_compressed_minutes(scenario.length, scenario.hour_in_minutes),
                    hour_in_minutes=_number(scenario.hour_in_minutes),
                )
            case "stop":
                report = await drills.stop(actor.id)
                if isinstance(report, DrillRefusal):
                    return notice_view("drill.not_running")
                return notice_view("drill.stopped", run_id=report.run.id)
        return notice_view("drill.usage", scenarios=scenarios)

    async def digest(self, actor: Actor) -> View:
        """/digest: the evening digest as it stands now (leadership and the duty officer)."""
        if self._digests is None:
            return notice_view("ui.no_rights")
        return await self._digests.reader_view(actor)

    async def case(self, actor: Actor, case_id: int | None, department: str | None = None) -> View:
        """/case N: the whole thread. In the case's own department chat, for whoever asks
        there; in another department's chat, never; elsewhere (the coordination chat, private
        chats) for those who may read the case's department (bot.staff.rights.may_see).
        `department`: whose chat the command came from, if a department's."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        if case_id is None:
            return notice_view("ui.usage_case")
        thread = await self._cases.thread(case_id)
        if thread is None:
            return notice_view("error.unknown_case", case_id=case_id)
        owner, coordination = thread.case.department, self._directory.coordination
        if department is not None and department not in (owner, coordination):
            return refusal_view(WrongChat(), self._directory)
        here = coordination if department == coordination else None
        if department != owner and not may_see(actor, owner, here):
            return notice_view("ui.no_rights")
        return page_view("case_thread.html.j2", self._thread_context(thread))

    async def escalate(self, actor: Actor, case_id: int | None, reason: str) -> View:
        if case_id is None:
            return notice_view("ui.usage_escalate")
        request = ActionRequest(Action.ESCALATE, note=reason or None)
        result = await self._cases.act(case_id, request, actor)
        if result.error is not None:
            return refusal_view(result.error, self._directory, name_the_right=True)
        return notice_view("ui.done", action=Action.ESCALATE.value)

    async def negative(self, actor: Actor, reference: str) -> View:
        """/negative <id or link>: a stored mention that opened no case is negative after all;
        its case opens (or the case it already has is named)."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        mention_id, url = mention_reference(reference)
        if self._intake is None or (mention_id is None and url is None):
            return notice_view("ui.usage_negative")
        if self._triage is not None:
            result = await self._triage.promote(mention_id, url, actor)
        else:
            result = await self._intake.promote(mention_id, url, actor)
        if result is None:
            return notice_view("ui.unknown_mention", reference=reference.strip())
        if isinstance(result, DomainError):
            return refusal_view(result, self._directory)
        if result.case is None or result.case.id is None:  # its case was deleted: not expected
            return notice_view("ui.unknown_mention", reference=reference.strip())
        key = "ui.marked_negative" if result.opened else "ui.already_a_case"
        return notice_view(key, case_id=result.case.id)

    async def not_negative(self, actor: Actor, reference: str) -> View:
        """/notnegative <id>: a mention on the triage list is not negative (staff say so)."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        mention_id, _ = mention_reference(reference)
        if self._triage is None or mention_id is None:
            return notice_view("ui.usage_not_negative")
        result = await self._triage.dismiss(mention_id, actor)
        if result is None:
            return notice_view("ui.unknown_mention", reference=reference.strip())
        if isinstance(result, DomainError):
            return refusal_view(result, self._directory)
        if result.mention.case_id is not None:
            return notice_view("ui.already_a_case", case_id=result.mention.case_id)
        return notice_view("ui.marked_not_negative", mention_id=mention_id)

    async def official(self, actor: Actor, case_id: int | None, official: bool) -> View:
        """/official N [off]: the author of case N speaks officially (administrators, duty)."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        if case_id is None:
            return notice_view("ui.usage_official")
        result = await self._cases.mark_official(case_id, official, actor)
        if result is None:
            return notice_view("error.unknown_case", case_id=case_id)
        if isinstance(result, DomainError):
            return refusal_view(result, self._directory)
        key = "ui.official_set" if official else "ui.official_unset"
        return notice_view(key, name=result.display_name)

    async def merge(self, actor: Actor, keep: int | None, gone: int | None) -> View:
        """/merge A B: author card B becomes part of A (administrators only)."""
        if keep is None or gone is None or keep == gone:
            return notice_view("ui.usage_merge")
        error = await self._cases.merge_authors(keep, gone, actor)
        if error is None:
            return notice_view("ui.merged", keep=keep, gone=gone)
        return refusal_view(error, self._directory)

    async def split(self, actor: Actor, mention_id: int | None) -> View:
        """/split N: mention N (listed by /case) leaves its case for a case of its own."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        if mention_id is None:
            return notice_view("ui.usage_split")
        result = await self._cases.split(mention_id, actor)
        if isinstance(result, DomainError):
            return refusal_view(result, self._directory, name_the_right=True)
        return notice_view("ui.split_done", mention_id=mention_id, case_id=result.id)

    async def forget(self, actor: Actor, author_id: int | None) -> View:
        """/forget N: author card N's personal data erased everywhere (administrators)."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        if author_id is None or self._erasure is None:
            return notice_view("ui.usage_forget")
        result = await self._erasure.forget(author_id, actor)
        if result is None:
            return notice_view("ui.unknown_author", author_id=author_id)
        if isinstance(result, DomainError):
            return refusal_view(result, self._directory)
        if result.already:
            return notice_view("ui.already_forgotten", author_id=author_id)
        erased = result.counts
        return notice_view(
            "ui.forgotten",
            author_id=author_id,
            mentions=erased.mentions,
            drafts=erased.drafts,
            messages=erased.outbox,
            events=erased.events,
        )

    def _thread_context(self, thread: CaseThread) -> dict[str, Any]:
        case, mention = thread.case, thread.mentions[0]
        waiting = publication.waiting_by_hand(case, thread.mentions, self._cases.publishable)
        card = card_view(
            case, mention, thread.author, self._directory, self._cases.tz, codes=self._cases.codes
        )
        facts: dict[str, Any] = {
            **card["case"],
            "outcome": case.outcome.value if case.outcome else None,
            "ignore_reason": case.ignore_reason.value if case.ignore_reason else None,
        }
        drafts = [
            {
                "version": d.version,
                "status": d.status.value,
                "text": d.text,
                "note": d.note,
                "author_name": self._directory.name_of(d.author),
            }
            for d in case.drafts
        ]
        events = [
            {
                "at": format_time(e.at, self._cases.tz),
                "kind": e.kind,
                "detail": self._detail(e.kind, e.payload),
                "actor": (
                    self._texts.t("ui.system_actor")
                    if e.actor == SYSTEM_ACTOR
                    else self._directory.name_of(e.actor)
                ),
            }
            for e in thread.events[-MAX_EVENTS:]
        ]
        return {
            "case": facts,
            "department_name": card["department_name"],
            "source": card["source"],
            "deadline": card["deadline"],
            "assignee_name": card["assignee_name"],
            "author": card["author"],
            "text": card["text"],
            "url": card["url"],
            # Every mention's, the first one's first; bounded like the history.
            "attachments": [
                line for m in thread.mentions for line in attachment_lines(m.attachments)
            ][:MAX_EVENTS],
            "drafts": drafts,
            "events": events,
            "why_negative": self._why_negative(mention),
            "joined": [
                {
                    "id": m.id,
                    "source": m.source,
                    "at": format_time(m.received_at, self._cases.tz),
                    "text": m.text[:120],
                }
                for m in thread.mentions[1:][-MAX_JOINED:]
            ],
            "joined_more": max(len(thread.mentions) - 1 - MAX_JOINED, 0),
            "by_hand": [
                {"id": m.id, "source": m.source, "url": m.url} for m in waiting[:MAX_BY_HAND]
            ],
            "by_hand_more": max(len(waiting) - MAX_BY_HAND, 0),
        }

    def _why_negative(self, mention: Mention) -> dict[str, Any] | None:
        """The model's strongest signals, recomputed from the text (cheap); only for a
        mention the model itself called negative or uncertain."""
        # The model intake uses now (a retrained one is swapped in there) unless given.
        model = self._sentiment or (self._intake.model if self._intake is not None else None)
        if (
            model is None
            or mention.sentiment_source is not SentimentSource.CLASSIFIER
            or mention.sentiment not in (Sentiment.NEGATIVE, Sentiment.UNCERTAIN)
        ):
            return None
        verdict = model.judge(mention.text, mention.language, explain=True)
        if not verdict.signals:
            return None
        return {"signals": list(verdict.signals), "p": round(verdict.p_negative, 2)}

    def _detail(self, kind: str, payload: dict[str, Any]) -> str:
        """The one thing worth reading about an event: a reason, a note, where it went; in
        words, never the stored id."""
        t_or = self._texts.t_or
        if kind == Action.SET_CODE.value and payload.get("code"):
            code = str(payload["code"])
            codes = self._cases.codes
            title = codes.title(code) if codes else code
            return f"{'+' if payload.get('added') else '−'} {title}"
        if kind == Action.SET_PRIORITY.value and payload.get("priority"):
            return t_or(f"priority.{payload['priority']}", str(payload["priority"]))
        if kind == Action.ASSIGN.value and payload.get("assignee"):
            return self._directory.name_of(str(payload["assignee"])) or ""
        if payload.get("target"):
            return self._directory.department_name(str(payload["target"]))
        if payload.get("outcome"):
            return t_or(f"outcome.{payload['outcome']}", "")
        if payload.get("reason") and payload.get("action") is None:
            # WAIT_FOR_AUTHOR stores why the clock stopped and IGNORE why there is no reply, as
            # ids; any other reason (an escalation's) is what the person wrote.
            group = {
                Action.WAIT_FOR_AUTHOR.value: "wait_reason",
                Action.IGNORE.value: "ignore_reason",
            }.get(kind)
            if group is None:
                return str(payload["reason"])
            return t_or(f"{group}.{payload['reason']}", "")
        if kind == Action.MARK_PUBLISHED.value and payload.get("by_hand"):
            return self._texts.t("ui.marked_by_hand", count=payload["by_hand"])
        note = str(payload.get("note") or "")
        if payload.get("tier_name"):  # a review at one tier of a chain: whose step it was
            tier = t_or(f"tier.{payload['tier_name']}", str(payload["tier_name"]))
            return f"{tier}: {note}" if note else tier
        return note


def case_number(word: str | None) -> int | None:
    """A case number as people type it: 42, #42 or №42."""
    word = (word or "").strip().lstrip("#№")
    return int(word) if word.isdigit() and len(word) < 12 else None


def mention_reference(word: str) -> tuple[int | None, str | None]:
    """A mention as people give it: its id (42, #42) or its link; (None, None) otherwise."""
    word = word.strip().strip("<>")
    number = case_number(word)
    if number is not None:
        return number, None
    if word.startswith(("http://", "https://")) and " " not in word:
        return None, word
    return None, None


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


def refusal_view(
    error: DomainError, names: Directory, *, name_the_right: bool = False
) -> NoticeView:
    """A refused action as a notice. A missing right reads "no rights" in short answers;
    `name_the_right` says which right and where instead. Errors carry ids; people read the
    department's and the colleague's names."""
    if isinstance(error, NoRight) and not name_the_right:
        return notice_view("ui.no_rights")
    params = dict(error.params)
    if "department" in params:
        department = params.pop("department")
        # "*": a right held in no particular department (/negative, /forget)
        params["department_name"] = (
            names.department_name(department) if department and department != "*" else None
        )
    if "assignee" in params:
        params["assignee_name"] = names.name_of(params.pop("assignee"))
    return notice_view(f"error.{error.code}", **params)


def _compressed_minutes(length: timedelta, hour_in_minutes: float) -> str:
    """Real minutes a drill of this drill-time length lasts."""
    return _number(length.total_seconds() / 3600 * hour_in_minutes)


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
