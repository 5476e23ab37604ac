"""The messages a case causes: its card in every chat of its department, drafts under the card
for review, escalation notices, the public reply; and the card and draft views themselves
(their buttons, submenus and SLA line), since what a card offers is the state machine's call.

Nothing here commits: items go into the caller's unit of work, and the outbox worker
(bot/messages/outbox.py, bot/messages/delivery.py) sends them. View shapes:
bot/messages/views.py.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cases.deadlines import running_deadlines
from bot.cases.lifecycle import ActionRequest, available_actions
from bot.cases.replies import origin_of
from bot.clock import Clock
from bot.messages.delivery import EXTERNAL_REF
from bot.messages.outbox import Destination, OutboxItem, OutboxOp
from bot.messages.views import (
    CardView,
    DraftView,
    MenuOption,
    SimilarFacts,
    SlaLine,
    View,
    card_ref,
    draft_ref,
    format_time,
    notice_view,
    public_reply_view,
)
from bot.model import (
    Action,
    Author,
    Case,
    Draft,
    DraftStatus,
    IgnoreReason,
    Mention,
    Outcome,
    WaitReason,
)
from bot.ports import UnitOfWork
from bot.staff.directory import Directory
from bot.staff.rights import Actor

# Actions whose button opens a list to choose from instead of acting at once.
MENU_ACTIONS = (
    Action.USE_TEMPLATE,
    Action.REROUTE,
    Action.CLOSE,
    Action.IGNORE,
    Action.WAIT_FOR_AUTHOR,
)
# Actions whose button asks for a text reply first.
PROMPT_ACTIONS = {
    Action.DRAFT: "ui.prompt_draft",
    Action.ESCALATE: "ui.prompt_reason",
    Action.REQUEST_CHANGES: "ui.prompt_note",
}
REVIEW_ACTIONS = (Action.APPROVE, Action.REQUEST_CHANGES, Action.REJECT)


async def first_mention(uow: UnitOfWork, case: Case) -> tuple[Mention, Author | None]:
    """The mention a case was opened for, and its author: what the card shows."""
    assert case.id is not None
    mentions = await uow.mentions.for_case(case.id)
    mention = mentions[0]
    author = await uow.authors.get(mention.author_id) if mention.author_id else None
    return mention, author


class Cards:
    """Builds a case's outgoing messages for every chat the directory names."""

    def __init__(self, directory: Directory, tz: ZoneInfo, clock: Clock, coordination: str) -> None:
        self._directory = directory
        self._tz = tz
        self._clock = clock
        self._coordination = coordination  # escalations are announced there too

    def publishable(self, mention: Mention) -> bool:
        """Whether the bot itself can post the answer where the mention was written."""
        origin = origin_of(mention, self._directory.discussion_chats)
        return origin is not None and origin.transport in self._directory.transports

    def view(
        self, case: Case, mention: Mention, author: Author | None, moved_to: str | None = None
    ) -> CardView:
        return card_view(
            case,
            mention,
            author,
            self._directory,
            self._tz,
            moved_to,
            publishable=self.publishable(mention),
            now=self._clock.now(),
        )

    def to_post(
        self, case: Case, mention: Mention, author: Author | None, now: datetime
    ) -> list[OutboxItem]:
        """A new card in every chat of the department, posted once per case version."""
        assert case.id is not None
        ref = card_ref(case.id, case.department)
        key = f"{ref}:post:{case.version}"
        view = self.view(case, mention, author)
        return self.for_all(case.department, OutboxOp.POST, view, ref, case, now, key)

    def to_edit(
        self, case: Case, mention: Mention, author: Author | None, now: datetime
    ) -> list[OutboxItem]:
        """The card redrawn in every chat of the department."""
        assert case.id is not None
        ref = card_ref(case.id, case.department)
        view = self.view(case, mention, author)
        return self.for_all(case.department, OutboxOp.EDIT, view, ref, case, now)

    def for_all(
        self,
        department: str,
        op: OutboxOp,
        view: View,
        ref: str,
        case: Case,
        now: datetime,
        key: str | None = None,
        reply_to: str | None = None,
    ) -> list[OutboxItem]:
        key = key or f"{ref}:{op.value}:{case.version}"
        return [
            dest.about(case, op, view, key, now, ref=ref, reply_to=reply_to)
            for dest in self._directory.destinations(department)
        ]

    async def announce(
        self,
        uow: UnitOfWork,
        old: Case,
        new: Case,
        request: ActionRequest,
        actor: Actor,
        mention: Mention,
        author: Author | None,
        now: datetime,
    ) -> None:
        """Queue every message one change causes: card edits, drafts for review, notices."""
        assert new.id is not None
        items: list[OutboxItem] = []
        dept = new.department
        card = card_ref(new.id, dept)
        if old.department != dept:
            # The old card says where the case went; a new card appears in the new chat.
            moved = self.view(old, mention, author, moved_to=dept)
            old_card = card_ref(new.id, old.department)
            items += self.for_all(old.department, OutboxOp.EDIT, moved, old_card, new, now)
            await uow.outbox.enqueue(items)
            await uow.outbox.enqueue(self.to_post(new, mention, author, now))
            return
        items += self.to_edit(new, mention, author, now)

        # Drafts live under the card: a new one for review, a reviewed one edited in place.
        for before, after in zip(old.drafts, new.drafts, strict=False):
            if before != after:
                ref = draft_ref(new.id, after.version, dept)
                items += self.for_all(
                    dept, OutboxOp.EDIT, draft_view(new, after, self._directory), ref, new, now
                )
        for draft in new.drafts[len(old.drafts) :]:
            if draft.status is DraftStatus.PENDING:
                ref = draft_ref(new.id, draft.version, dept)
                items += self.for_all(
                    dept,
                    OutboxOp.REPLY,
                    draft_view(new, draft, self._directory),
                    ref,
                    new,
                    now,
                    reply_to=card,
                )

        if request.action is Action.ESCALATE:
            notice = notice_view(
                "ui.escalated",
                case_id=new.id,
                level=new.escalation_level,
                department_name=self._directory.department_name(dept),
                actor_name=actor.name,
                reason=(request.note or "").strip(),
            )
            ref = f"escalation:{new.id}:{new.version}"
            items += self.for_all(dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card)
            if self._coordination != dept:
                items += self.for_all(self._coordination, OutboxOp.POST, notice, ref, new, now)

        if request.action is Action.PUBLISH and new.drill:
            # Nothing of a drill leaves the drill: the card says it is published, and this says
            # that it was not really.
            notice = notice_view("drill.publish_simulated", case_id=new.id)
            ref = f"drill-publish:{new.id}:{new.version}"
            items += self.for_all(dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card)
        elif request.action is Action.PUBLISH:
            items.append(self._public_reply(new, mention, now))
        await uow.outbox.enqueue(items)

    def _public_reply(self, case: Case, mention: Mention, now: datetime) -> OutboxItem:
        """The approved answer, posted under the mention itself."""
        origin = origin_of(mention, self._directory.discussion_chats)
        approved = case.approved_draft
        assert origin is not None and approved is not None
        return OutboxItem(
            transport=origin.transport,
            chat=origin.chat,
            op=OutboxOp.REPLY,
            payload=public_reply_view(approved.text),
            idempotency_key=f"{origin.transport}:{origin.chat}:publish:{case.id}:"
            f"{approved.version}",
            ref_key=f"public:{case.id}:{approved.version}",
            reply_to_key=f"{EXTERNAL_REF}{origin.message_id}",
            case_id=case.id,
            urgency=case.priority.rank,
            created_at=now,
        )

    async def missing(self, uow: UnitOfWork, now: datetime) -> list[OutboxItem]:
        """Cards of open cases that a configured chat has never received (e.g. Telegram was
        configured after cases arrived). Keys match the ones intake uses."""
        # One query per department chat, not one per open case: 100,000 open cases whose
        # cards are all there cost a handful of index look-ups at start.
        missing: dict[int, tuple[Case, list[Destination]]] = {}
        for department in self._directory.department_ids():
            for dest in self._directory.destinations(department):
                for case in await uow.cases.open_without_card(
                    department, dest.transport, dest.chat
                ):
                    assert case.id is not None
                    missing.setdefault(case.id, (case, []))[1].append(dest)
        firsts = await uow.mentions.first_of_cases(sorted(missing))
        authors = await uow.authors.cards_of(
            sorted({m.author_id for m in firsts.values() if m.author_id})
        )
        items: list[OutboxItem] = []
        for case_id, (case, dests) in sorted(missing.items()):
            mention = firsts.get(case_id)
            if mention is None:
                continue
            view = self.view(case, mention, authors.get(mention.author_id or 0))
            ref = card_ref(case_id, case.department)
            key = f"{ref}:post:{case.version}"
            items += [d.about(case, OutboxOp.POST, view, key, now, ref=ref) for d in dests]
        return items


def card_view(
    case: Case,
    mention: Mention,
    author: Author | None,
    directory: Directory,
    tz: ZoneInfo,
    moved_to: str | None = None,
    publishable: bool = False,
    menu: Action | None = None,
    options: list[MenuOption] | None = None,
    now: datetime | None = None,
    sla_reminder: str | None = None,
) -> CardView:
    """Everything a card shows. The card of a rerouted case says where it went, no buttons.
    With `now`, the card says whether the nearest running deadline (the reaction, while one is
    set and nobody took the case, else the citizen-facing one) is missed ("sla"); with
    `sla_reminder`, which reminder the SLA clock sent about it."""
    assert case.id is not None
    phase = min(running_deadlines(case), key=lambda p: p[1], default=None)
    deadline = phase[1] if phase else None
    draft = case.latest_draft
    actions = [] if moved_to else card_actions(case, publishable)
    return {
        "view": "card",
        "case": {
            "id": case.id,
            "version": case.version,
            "state": case.state.value,
            "priority": case.priority.value,
            "department": case.department,
            "escalation_level": case.escalation_level,
            "drill": case.drill,
            "mention_count": case.mention_count,
        },
        "department_name": directory.department_name(case.department),
        "route_confidence": case.route_confidence,
        "source": mention.source,
        "deadline": format_time(deadline, tz) if case.state.is_open else None,
        "assignee_name": directory.name_of(case.assignee),
        "author": {
            "name": (author.display_name if author else "") or mention.author.display_name,
            "labels": sorted(label.value for label in author.labels) if author else [],
            "negative_count": author.negative_count if author else 0,
            "total_mentions": author.total_mentions if author else 0,
        },
        "text": mention.text,
        "url": mention.url,
        "draft": (
            {"version": draft.version, "status": draft.status.value, "text": draft.text}
            if draft
            else None
        ),
        "moved_to": directory.department_name(moved_to) if moved_to else None,
        "sla": _sla_line(case, phase, tz, now, sla_reminder),
        "similar": _similar(case, mention, tz),
        "actions": [a.value for a in actions],
        "menu": menu.value if menu and not moved_to else None,
        "options": options or [],
    }


def _similar(case: Case, first: Mention, tz: ZoneInfo) -> SimilarFacts | None:
    """The spread of a case that similar mentions joined; the text shown is the first's."""
    if case.similar_count <= 0:
        return None
    last = case.last_mention_at or first.received_at
    return {
        "count": case.mention_count - 1,
        "people": max(case.people_count - 1, 0),
        "first": format_time(first.received_at, tz) or "",
        "last": format_time(last, tz) or "",
        "sources": list(dict.fromkeys((first.source, *case.sources)))[:5],  # the card is short
    }


def _sla_line(
    case: Case,
    phase: tuple[str, datetime] | None,
    tz: ZoneInfo,
    now: datetime | None,
    reminder: str | None,
) -> SlaLine | None:
    """The card's SLA line as a messages key and its params."""
    if case.waiting_since is not None and case.state.is_open:
        since = format_time(case.waiting_since, tz)
        return {"key": "sla.card_paused", "params": {"since": since}, "reminder": reminder or None}
    if phase is None:
        return None
    kind, due = phase
    key = "sla.card_overdue" if now is not None and due <= now else "sla.card_due"
    params: dict[str, str | None] = {"kind": kind, "deadline": format_time(due, tz)}
    return {"key": key, "params": params, "reminder": reminder or None}


def card_actions(case: Case, publishable: bool) -> list[Action]:
    """Buttons under a card: what the state allows, without review buttons (they sit under
    the draft itself) and with the one way of publishing that fits the mention's origin."""
    hidden = set(REVIEW_ACTIONS)
    # A drill case offers Publish: it is simulated (Cards.announce), never posted.
    hidden.add(Action.MARK_PUBLISHED if publishable or case.drill else Action.PUBLISH)
    return [a for a in available_actions(case) if a not in hidden]


def draft_view(case: Case, draft: Draft, directory: Directory) -> DraftView:
    assert case.id is not None
    pending = draft.status is DraftStatus.PENDING
    return {
        "view": "draft",
        "case_id": case.id,
        "case_version": case.version,
        "version": draft.version,
        "text": draft.text,
        "author_name": directory.name_of(draft.author),
        "status": draft.status.value,
        "reviewer_name": directory.name_of(draft.reviewer),
        "note": draft.note,
        "actions": [a.value for a in REVIEW_ACTIONS] if pending else [],
        "drill": case.drill,
    }


def menu_options(
    menu: Action, case: Case, directory: Directory, templates: list[tuple[str, str]]
) -> list[MenuOption]:
    """Choices of a submenu as {"arg", "label"}; labels of enums are message keys."""
    if menu is Action.USE_TEMPLATE:
        return [{"arg": template_id, "label": title} for template_id, title in templates]
    if menu is Action.REROUTE:
        return [
            {"arg": dept, "label": directory.department_name(dept)}
            for dept in directory.department_ids()
            if dept != case.department
        ]
    if menu is Action.CLOSE:
        return [{"arg": o.value, "label_key": f"outcome.{o.value}"} for o in Outcome]
    if menu is Action.IGNORE:
        options: list[MenuOption] = [
            {"arg": r.value, "label_key": f"ignore_reason.{r.value}"} for r in IgnoreReason
        ]
        coordination = directory.coordination
        if coordination and coordination != case.department:
            # "Not ours": the coordination centre decides whose it is.
            not_ours: MenuOption = {
                "arg": coordination,
                "label_key": "ui.not_ours",
                "action": Action.REROUTE.value,
            }
            options.insert(0, not_ours)
        return options
    if menu is Action.WAIT_FOR_AUTHOR:
        return [{"arg": r.value, "label_key": f"wait_reason.{r.value}"} for r in WaitReason]
    raise ValueError(f"{menu} has no menu")
