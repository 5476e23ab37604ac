"""The messages a case causes: its card in every chat of its department, drafts under the card
for review, escalation notices, the public reply; and the card and draft views themselves
(their buttons, submenus and SLA line), since what a card offers is the state machine's call.

Nothing here commits: items go into the caller's unit of work, and the outbox worker
(bot/messages/outbox.py, bot/messages/delivery.py) sends them. View shapes:
bot/messages/views.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cases import publication
from bot.cases.codes import CodeBook, arg_of_code
from bot.cases.deadlines import running_deadlines
from bot.cases.lifecycle import ActionRequest, available_actions
from bot.cases.replies import Origin, TemplateOffer, origin_of
from bot.clock import Clock
from bot.messages.delivery import EXTERNAL_REF
from bot.messages.outbox import Destination, OutboxItem, OutboxOp
from bot.messages.views import (
    AttachmentLine,
    AttachmentView,
    CardView,
    ChainStep,
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
    ApproverRole,
    Attachment,
    AttachmentKind,
    Author,
    Case,
    CaseState,
    DeptRole,
    Draft,
    DraftKind,
    DraftStatus,
    IgnoreReason,
    Mention,
    Outcome,
    Priority,
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
    Action.SET_CODE,
    Action.SET_PRIORITY,
    Action.ASSIGN,
)
# A menu with a second level: «Коды ▸» lists dimensions, a dimension lists its codes. The
# second level is named "<action>.<dimension>" (bot.chat.inbound.parse_menu).
SUBMENU_SEPARATOR = "."
# Actions whose button asks for a text reply first.
PROMPT_ACTIONS = {
    Action.DRAFT: "ui.prompt_draft",
    Action.ESCALATE: "ui.prompt_reason",
    Action.REQUEST_CHANGES: "ui.prompt_note",
    Action.FOLLOW_UP: "ui.prompt_follow_up",
    Action.CORRECT: "ui.prompt_correct",
    Action.REJECT: "ui.prompt_reject",  # a reason is required, shown to the author
}
REVIEW_ACTIONS = (Action.APPROVE, Action.REQUEST_CHANGES, Action.REJECT)
# Which transport can send a photo by its reference: a Telegram file id works only for the
# bot that received it, an mxc:// uri only on Matrix. Anything else the card lists.
FORWARDED_BY = {"telegram": "telegram", "mxc": "matrix"}


async def first_mention(uow: UnitOfWork, case: Case) -> tuple[Mention, Author | None]:
    """The mention a case was opened for, and its author: what the card shows."""
    assert case.id is not None
    mentions = await uow.mentions.for_case(case.id)
    mention = mentions[0]
    author = await uow.authors.get(mention.author_id) if mention.author_id else None
    return mention, author


class Cards:
    """Builds a case's outgoing messages for every chat the directory names."""

    def __init__(
        self,
        directory: Directory,
        tz: ZoneInfo,
        clock: Clock,
        coordination: str,
        codes: CodeBook | None = None,
    ) -> None:
        self._directory = directory
        self.codes = codes  # the playbook's codes.yaml; None or empty: no «Коды ▸»
        self._tz = tz
        self._clock = clock
        self._coordination = coordination  # escalations are announced there too

    def publishable(self, mention: Mention) -> bool:
        """Whether the bot itself can post the answer where the mention was written."""
        return self._origin(mention) is not None

    def _origin(self, mention: Mention) -> Origin | None:
        origin = origin_of(mention, self._directory.discussion_chats)
        if origin is None or origin.transport not in self._directory.transports:
            return None
        return origin

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
            codes=self.codes,
        )

    def to_post(
        self, case: Case, mention: Mention, author: Author | None, now: datetime
    ) -> list[OutboxItem]:
        """A new card in every chat of the department, posted once per case version."""
        assert case.id is not None
        ref = card_ref(case.id, case.department)
        key = f"{ref}:post:{case.version}"
        view = self.view(case, mention, author)
        items = self.for_all(case.department, OutboxOp.POST, view, ref, case, now, key)
        return items + self.attachments_to_post(case, mention, now)

    def attachments_to_post(self, case: Case, mention: Mention, now: datetime) -> list[OutboxItem]:
        """The mention's photos, each posted once as a reply under the card in every chat
        whose transport can send it by reference and within the configured size: staff see
        the picture without leaving the chat. The card lists every attachment anyway."""
        assert case.id is not None
        card = card_ref(case.id, case.department)
        limit = self._directory.attachment_forward_bytes
        items: list[OutboxItem] = []
        for index, attachment in enumerate(mention.attachments):
            if attachment.kind is not AttachmentKind.PHOTO:
                continue
            if attachment.size is not None and attachment.size > limit:
                continue
            view = attachment_view(case.id, attachment)
            ref = f"attachment:{case.id}:{mention.id}:{index}:{case.department}"
            items += [
                dest.about(case, OutboxOp.REPLY, view, ref, now, ref=ref, reply_to=card)
                for dest in self._directory.destinations(case.department)
                if FORWARDED_BY.get(attachment.scheme) == dest.transport
            ]
        return items

    def to_edit(
        self,
        case: Case,
        mention: Mention,
        author: Author | None,
        now: datetime,
        urgency_bonus: int = 0,
        key: str | None = None,
    ) -> list[OutboxItem]:
        """The card redrawn in every chat of the department; `key` when the same version of
        the card is redrawn more than once (a cluster's answer going out)."""
        assert case.id is not None
        ref = card_ref(case.id, case.department)
        view = self.view(case, mention, author)
        return self.for_all(
            case.department, OutboxOp.EDIT, view, ref, case, now, key, urgency_bonus=urgency_bonus
        )

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
        urgency_bonus: int = 0,
    ) -> list[OutboxItem]:
        key = key or f"{ref}:{op.value}:{case.version}"
        return [
            dest.about(
                case, op, view, key, now, ref=ref, reply_to=reply_to, urgency_bonus=urgency_bonus
            )
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
        urgency_bonus: int = 0,
    ) -> None:
        """Queue every message one change causes: card edits, drafts for review, notices.
        `urgency_bonus`: PRESS_URGENCY when a person caused it, so it overtakes new cards."""
        bonus = urgency_bonus
        assert new.id is not None
        items: list[OutboxItem] = []
        dept = new.department
        card = card_ref(new.id, dept)
        if old.department != dept:
            # The old card says where the case went; a new card appears in the new chat.
            moved = self.view(old, mention, author, moved_to=dept)
            old_card = card_ref(new.id, old.department)
            items += self.for_all(
                old.department, OutboxOp.EDIT, moved, old_card, new, now, urgency_bonus=bonus
            )
            await uow.outbox.enqueue(items)
            await uow.outbox.enqueue(self.to_post(new, mention, author, now))
            return
        items += self.to_edit(new, mention, author, now, bonus)

        # Drafts live under the card: a new one for review, a reviewed one edited in place.
        # One that reached a tier whose approvers read the coordination chat is posted there
        # too, with its review buttons, and edited there from then on.
        elsewhere = self._coordination if self._coordination != dept else None
        for before, after in zip(old.drafts, new.drafts, strict=False):
            if before != after:
                ref = draft_ref(new.id, after.version, dept)
                view = draft_view(new, after, self._directory)
                items += self.for_all(dept, OutboxOp.EDIT, view, ref, new, now, urgency_bonus=bonus)
                if elsewhere and reached_coordination(before):
                    items += self.for_all(
                        elsewhere, OutboxOp.EDIT, view, ref, new, now, urgency_bonus=bonus
                    )
                elif elsewhere and reached_coordination(after):
                    items += self.for_all(
                        elsewhere, OutboxOp.POST, view, ref, new, now, urgency_bonus=bonus
                    )
        for draft in new.drafts[len(old.drafts) :]:
            if draft.status is DraftStatus.PENDING:
                ref = draft_ref(new.id, draft.version, dept)
                view = draft_view(new, draft, self._directory)
                items += self.for_all(
                    dept, OutboxOp.REPLY, view, ref, new, now, reply_to=card, urgency_bonus=bonus
                )
                if elsewhere and reached_coordination(draft):
                    items += self.for_all(
                        elsewhere, OutboxOp.POST, view, ref, new, now, urgency_bonus=bonus
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
            items += self.for_all(
                dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card, urgency_bonus=bonus
            )
            if self._coordination != dept:
                items += self.for_all(self._coordination, OutboxOp.POST, notice, ref, new, now)

        if request.action is Action.ASSIGN and new.assignee is not None:
            # The colleague is told under the card, in every chat of the department.
            notice = notice_view(
                "ui.assigned",
                case_id=new.id,
                assignee_name=self._directory.name_of(new.assignee),
                actor_name=actor.name,
            )
            ref = f"assigned:{new.id}:{new.version}"
            items += self.for_all(dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card)

        if request.action is Action.PUBLISH and new.drill:
            # Nothing of a drill leaves the drill: the card says it is published, and this says
            # that it was not really.
            notice = notice_view("drill.publish_simulated", case_id=new.id)
            ref = f"drill-publish:{new.id}:{new.version}"
            items += self.for_all(
                dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card, urgency_bonus=bonus
            )
        elif request.action is Action.PUBLISH:
            mentions = await uow.mentions.for_case(new.id)
            items += await self.public_replies(uow, old, new, mentions, now, bonus)
            items += self._by_hand_notice(new, mentions, now, bonus)
        await uow.outbox.enqueue(items)

    async def public_replies(
        self,
        uow: UnitOfWork,
        old: Case,
        case: Case,
        mentions: Sequence[Mention],
        now: datetime,
        urgency_bonus: int = 0,
    ) -> list[OutboxItem]:
        """The approved answer, posted under every mention the bot can answer, each as a
        reply to its own comment (bot/cases/publication.py); a follow-up too, in the same
        thread. A correction edits the bot's replies it corrects, or, when the bot has none
        there, is a new reply that says it corrects. Keys name the case, the draft version
        and the mention: a crash after a send repeats nothing."""
        approved = case.approved_draft
        assert approved is not None and case.id is not None and mentions
        first = mentions[0]
        op, version, corrects = OutboxOp.REPLY, approved.version, False
        edited: set[str] | None = None
        if approved.kind is DraftKind.CORRECTION:
            target = bot_reply_of(old)
            if target is not None:
                op, version = OutboxOp.EDIT, target
                # A reply that said it corrects keeps saying so.
                corrects = case.drafts[target - 1].kind is DraftKind.CORRECTION
                # Only the replies there are: a mention whose reply never went out gets no
                # post out of nowhere (an edit without its message becomes a post).
                edited = set(await uow.outbox.replies_of(case.id, public_ref(case, target)))
            else:
                corrects = True
        verb = "correct" if approved.kind is DraftKind.CORRECTION else "publish"
        view = public_reply_view(approved.text, corrects=corrects)
        items: list[OutboxItem] = []
        for mention in publication.firsts_per_person(mentions):
            origin = self._origin(mention)
            if origin is None:
                continue
            suffix = publication.reply_suffix(mention, first)
            ref = public_ref(case, version) + suffix
            if edited is not None and suffix and ref not in edited:
                continue
            key = f"{verb}:{case.id}:{approved.version}{suffix}"
            items.append(self._public_item(case, origin, op, view, key, ref, now, urgency_bonus))
        return items

    def joiner_reply(
        self, case: Case, first: Mention, mention: Mention, now: datetime
    ) -> OutboxItem | None:
        """The published answer under a mention that joined the case after it went out:
        the text the bot's replies show now, once (keyed by the mention)."""
        origin = self._origin(mention)
        version = bot_reply_of(case)
        public = case.published_draft
        if origin is None or version is None or public is None or case.id is None:
            return None
        corrects = public.kind is DraftKind.CORRECTION
        view = public_reply_view(public.text, corrects=corrects)
        suffix = publication.reply_suffix(mention, first)
        key = f"publish:{case.id}:{version}{suffix}"
        ref = public_ref(case, version) + suffix
        return self._public_item(case, origin, OutboxOp.REPLY, view, key, ref, now)

    def _public_item(
        self,
        case: Case,
        origin: Origin,
        op: OutboxOp,
        view: View,
        key: str,
        ref: str,
        now: datetime,
        urgency_bonus: int = 0,
    ) -> OutboxItem:
        return OutboxItem(
            transport=origin.transport,
            chat=origin.chat,
            op=op,
            payload=view,
            idempotency_key=f"{origin.transport}:{origin.chat}:{key}",
            ref_key=ref,
            reply_to_key=f"{EXTERNAL_REF}{origin.message_id}",
            case_id=case.id,
            urgency=case.priority.rank + urgency_bonus,
            created_at=now,
        )

    def _by_hand_notice(
        self, case: Case, mentions: Sequence[Mention], now: datetime, urgency_bonus: int
    ) -> list[OutboxItem]:
        """Under the card: the answer to copy where only a person can post it, with the
        first links (all of them in /case), and how to mark it done."""
        waiting = publication.waiting_by_hand(case, mentions, self.publishable)
        if not waiting or case.id is None or case.drill:
            return []
        approved = case.published_draft
        links = [m.url for m in waiting if m.url][: publication.BY_HAND_LINKS]
        notice = notice_view(
            "ui.by_hand",
            case_id=case.id,
            count=len(waiting),
            text=approved.text if approved else "",
            links=links,
            more=len(waiting) - len(links),
        )
        card = card_ref(case.id, case.department)
        ref = f"by-hand:{case.id}:{case.version}"
        return self.for_all(
            case.department,
            OutboxOp.REPLY,
            notice,
            ref,
            case,
            now,
            reply_to=card,
            urgency_bonus=urgency_bonus,
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
            chats = {(d.transport, d.chat) for d in dests}
            items += [
                item
                for item in self.attachments_to_post(case, mention, now)
                if (item.transport, item.chat) in chats
            ]
        return items


# The logical keys of the bot's public replies start so (bot/cases/progress.py counts them).
PUBLIC_REF = "public:"


def public_ref(case: Case, version: int) -> str:
    """The logical key of the bot's public reply that published this draft version; under a
    cluster's other mentions it goes on with ":<mention id>" (publication.reply_suffix)."""
    return f"{PUBLIC_REF}{case.id}:{version}"


def case_of_public_ref(ref: str) -> int | None:
    """The case a public_ref names; None for any other key."""
    kind, _, rest = ref.partition(":")
    case_id = rest.partition(":")[0]
    return int(case_id) if kind == "public" and case_id.isdigit() else None


def bot_reply_of(case: Case) -> int | None:
    """The draft version whose key names the bot's reply now showing the latest public text,
    or None when that text is not in a reply of the bot's (published by hand, or nothing).
    A correction the bot made by editing leaves the reply where it was."""
    current: int | None = None
    for draft in case.drafts:
        if draft.published_at is None:
            continue
        edited = draft.kind is DraftKind.CORRECTION and current is not None
        if draft.published_by_bot and not edited:
            current = draft.version
        elif not draft.published_by_bot and draft.kind is not DraftKind.CORRECTION:
            current = None
    return current


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
    codes: CodeBook | None = None,
    menu_name: str | None = None,
) -> CardView:
    """Everything a card shows. The card of a rerouted case says where it went, no buttons.
    With `now`, the card says whether the nearest running deadline (the reaction, while one is
    set and nobody took the case, else the citizen-facing one) is missed ("sla"); with
    `sla_reminder`, which reminder the SLA clock sent about it."""
    assert case.id is not None
    phase = min(running_deadlines(case), key=lambda p: p[1], default=None)
    deadline = phase[1] if phase else None
    draft = case.latest_draft
    public = case.published_draft
    actions = [] if moved_to else card_actions(case, publishable, codes)
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
            {
                "version": draft.version,
                "status": draft.status.value,
                "text": draft.text,
                "kind": draft.kind.value,
                "chain": approval_chain(draft, directory),
            }
            if draft
            else None
        ),
        # What went public before a follow-up or correction being written: shown above it.
        "published": (
            {
                "version": public.version,
                "status": public.status.value,
                "text": public.text,
                "kind": public.kind.value,
            }
            if public is not None and draft is not None and draft is not public
            else None
        ),
        "moved_to": directory.department_name(moved_to) if moved_to else None,
        "sla": _sla_line(case, phase, tz, now, sla_reminder),
        "attachments": attachment_lines(mention.attachments),
        "similar": _similar(case, mention, tz),
        "publication": publication.facts(case),
        "actions": [a.value for a in actions],
        "menu": (menu_name or menu.value) if menu and not moved_to else None,
        "options": options or [],
        "codes": codes.shown(case.codes) if codes else [],
    }


def attachment_lines(attachments: tuple[Attachment, ...]) -> list[AttachmentLine]:
    """What a card and /case say of each attachment: kind, name, size, and a link where
    anyone can open it."""
    # A name is one line whatever it holds: a file name may carry newlines and tabs.
    return [
        {"kind": a.kind.value, "name": " ".join(a.name.split()), "size": a.size, "url": a.web_url}
        for a in attachments
    ]


def attachment_view(case_id: int, attachment: Attachment) -> AttachmentView:
    return {
        "view": "attachment",
        "case_id": case_id,
        "kind": attachment.kind.value,
        "ref": attachment.ref,
        "name": attachment.name,
        "mime": attachment.mime,
        "size": attachment.size,
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


def card_actions(case: Case, publishable: bool, codes: CodeBook | None = None) -> list[Action]:
    """Buttons under a card: what the state allows, without review buttons (they sit under
    the draft itself), with the one way of publishing that fits the mention's origin, and
    «Коды ▸» only where the playbook has codes for the department."""
    hidden = set(REVIEW_ACTIONS)
    if codes is None or not codes.dimensions(case.department):
        hidden.add(Action.SET_CODE)
    # A drill case offers Publish: it is simulated (Cards.announce), never posted. Once
    # published, "Published" marks what only a person could answer (available_actions).
    if case.state is not CaseState.PUBLISHED:
        hidden.add(Action.MARK_PUBLISHED if publishable or case.drill else Action.PUBLISH)
    return [a for a in available_actions(case) if a not in hidden]


# Tiers whose approvers read the coordination chat rather than the department's.
COORDINATION_TIERS = frozenset({ApproverRole.PRESS_SECRETARY, ApproverRole.LEADERSHIP})


def _reached(draft: Draft) -> int:
    """How far along its chain a draft got: the tier it waits at or was stopped at."""
    return min(len(draft.approvals), len(draft.tiers) - 1)


def reached_coordination(draft: Draft) -> bool:
    """Whether the draft was ever asked of a tier that reads the coordination chat (so it
    has been posted there); a template that skipped the chain never was."""
    if draft.pre_approved:
        return False
    return any(tier in COORDINATION_TIERS for tier in draft.tiers[: _reached(draft) + 1])


def approval_chain(draft: Draft, directory: Directory) -> list[ChainStep]:
    """The chain as a line of steps; empty for one tier (the second person is all of it)."""
    if len(draft.tiers) < 2 or draft.pre_approved:
        return []
    by_tier = {a.tier: a for a in draft.approvals}
    at = _reached(draft)
    stopped = draft.status in (DraftStatus.CHANGES_REQUESTED, DraftStatus.REJECTED)
    steps: list[ChainStep] = []
    for i, tier in enumerate(draft.tiers):
        approval = by_tier.get(i)
        if approval is not None:
            state = "done"
        elif i == at and draft.status is DraftStatus.PENDING:
            state = "current"
        elif i == at and stopped:
            state = "stopped"
        else:
            state = "waiting"
        by = directory.name_of(approval.reviewer) if approval else None
        steps.append({"tier": tier.value, "state": state, "by": by})
    return steps


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
        "kind": draft.kind.value,
        "chain": approval_chain(draft, directory),
    }


# How a template that will be published at once is offered: «Опубликовать: <title>».
PUBLISH_TEMPLATE_LABEL = "ui.publish_template"
PREVIEW_LENGTH = 600  # a template's text previewed on the card, as long as a draft's


def template_options(offers: Sequence[TemplateOffer], publishable: bool) -> list[MenuOption]:
    """The first-reply menu: each template with its text previewed on the card. One that
    needs no second person, where the bot can publish, says that choosing it publishes."""
    options: list[MenuOption] = []
    for offer in offers:
        option: MenuOption = {"arg": offer.template_id, "preview": offer.text[:PREVIEW_LENGTH]}
        if publishable and offer.skips_review:
            option["label_key"] = PUBLISH_TEMPLATE_LABEL
            option["label_params"] = {"title": offer.title}
        else:
            option["label"] = offer.title
        options.append(option)
    return options


def menu_options(
    menu: Action,
    case: Case,
    directory: Directory,
    templates: list[tuple[str, str]],
    codes: CodeBook | None = None,
    dimension: str | None = None,
) -> list[MenuOption]:
    """Choices of a submenu as {"arg", "label"}; labels of enums are message keys. An option
    with "menu" opens that submenu instead of acting (a dimension of «Коды ▸»). Templates
    here by title only; the card's menu offers them with template_options."""
    if menu is Action.SET_CODE:
        return code_options(case, codes, dimension)
    if menu is Action.SET_PRIORITY:
        return [
            {"arg": p.value, "label_key": f"priority.{p.value}"}
            for p in sorted(Priority, key=lambda p: p.rank, reverse=True)
            if p is not case.priority
        ]
    if menu is Action.ASSIGN:
        return [
            {"arg": staff_id, "label": name}
            for staff_id, name in colleagues(directory, case.department)
            if staff_id != case.assignee
        ]
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


def code_options(case: Case, codes: CodeBook | None, dimension: str | None) -> list[MenuOption]:
    """«Коды ▸»: the department's dimensions, each opening its codes; or one dimension's
    codes, those the case has marked ✓ (choosing one again removes it)."""
    if codes is None:
        return []
    if dimension is None:
        return [
            {
                "arg": d.id,
                "label": d.title.get(codes.locale) + " ▸",
                "menu": f"{Action.SET_CODE.value}{SUBMENU_SEPARATOR}{d.id}",
            }
            for d in codes.dimensions(case.department)
        ]
    return [
        {
            "arg": arg_of_code(code),
            "label": f"✓ {title}" if code in case.codes else title,
            "action": Action.SET_CODE.value,
        }
        for code, title in codes.codes(dimension, case.department)
    ]


def colleagues(directory: Directory, department: str) -> list[tuple[str, str]]:
    """(staff id, name) of everyone with a role in the department, in the config's order:
    whom its lead may assign a case to."""
    seen: dict[str, str] = {}
    for role in DeptRole:
        for member in directory.with_department_role(department, role):
            seen.setdefault(member.id, member.name)
    order = {m.id: i for i, m in enumerate(directory.staff())}
    return sorted(seen.items(), key=lambda item: order.get(item[0], 0))
