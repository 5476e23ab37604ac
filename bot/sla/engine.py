"""The SLA clock, pure: which timers a case needs, where an escalation chain goes next, how
waiting for the author moves deadlines. No I/O: bot/sla/service.py stores and fires timers.

One citizen-facing deadline matters at a time (bot.cases.deadlines.current_deadline): the
first reply until the author was first contacted, then the approved answer, then resolution.
Beside it runs the optional reaction deadline (somebody takes the case) until somebody does
(running_deadlines). Their reminders and breaches are planned whenever the case changes; an
escalation chain is planned one notice at a time, by the breach and then by each notice as it
fires, so a chain costs one pending row per case and deadline.

Timer keys name the deadline they belong to (case, kind, due moment): a key that has fired is
never planned again, and a new deadline (after a take, or after a pause moved it) gets new
keys, hence its own reminders and its own chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.cases.deadlines import DEFAULT_FOLLOW_UP, running_deadlines
from bot.model import Action, Case
from bot.settings.escalation_rules import EscalationChain, EscalationStep
from bot.settings.playbook import Playbook
from bot.settings.sla_rules import SlaPolicy, WorkCalendar
from bot.sla.calendar import (
    add_working_time,
    plan_deadlines,
    subtract_working_time,
    working_time_between,
)
from bot.sla.timers import Timer, TimerKind

__all__ = ["SlaEngine", "TimerPlan", "deadline_tag"]

_DAY = timedelta(days=1)
_CACHE = 4_096  # reminder plans kept per engine


@dataclass(frozen=True, slots=True)
class TimerPlan:
    """What arming one case changes: pending timers to drop and timers to add."""

    drop: tuple[int, ...] = ()
    add: tuple[Timer, ...] = ()


def deadline_tag(case_id: int, kind: str, due: datetime) -> str:
    """Names one deadline of one case; part of every key of its timers."""
    return f"{case_id}:{kind}:{int(due.timestamp())}"


class SlaEngine:
    def __init__(self, playbook: Playbook, tz: ZoneInfo) -> None:
        self._playbook = playbook
        self._tz = tz  # the organisation's: escalation windows are in its local time
        self._reminder_cache: dict[
            tuple[str, datetime, datetime], tuple[tuple[str, datetime], ...]
        ] = {}

    # --- the playbook, per case ----------------------------------------------------------

    def policy(self, case: Case) -> SlaPolicy | None:
        if case.sla_policy is None:
            return None
        return self._playbook.sla.policies.get(case.sla_policy)

    def chain(self, policy: SlaPolicy | None) -> EscalationChain | None:
        if policy is None or policy.escalation_chain is None:
            return None
        return self._playbook.escalation.chains.get(policy.escalation_chain)

    def _calendar(self, policy: SlaPolicy) -> WorkCalendar:
        return self._playbook.calendar(policy.calendar)

    def paused(self, case: Case) -> bool:
        """The clock stands while the case waits for its author, unless the policy says no."""
        policy = self.policy(case)
        return (
            case.waiting_since is not None
            and policy is not None
            and policy.pause_while_waiting_for_author
        )

    def follow_up_after(self, case: Case) -> timedelta:
        policy = self.policy(case)
        return policy.follow_up_after if policy is not None else DEFAULT_FOLLOW_UP

    # --- pause and resume ----------------------------------------------------------------

    def resumed(self, waiting: Case, resumed: Case, now: datetime) -> Case:
        """`resumed` (the case after AUTHOR_REPLIED) with every unmet deadline moved later by
        the working time that passed while `waiting` waited."""
        policy = self.policy(waiting)
        since = waiting.waiting_since
        if since is None or policy is None or not policy.pause_while_waiting_for_author:
            return resumed
        calendar = self._calendar(policy)
        paused = working_time_between(calendar, since, now, self._tz)
        if paused <= timedelta(0):
            return resumed

        def later(due: datetime | None) -> datetime | None:
            return add_working_time(calendar, due, paused, self._tz) if due else None

        return replace(
            resumed,
            reaction_due_at=(
                later(resumed.reaction_due_at)
                if resumed.reacted_at is None
                else resumed.reaction_due_at
            ),
            first_touch_due_at=(
                later(resumed.first_touch_due_at)
                if resumed.first_touched_at is None
                else resumed.first_touch_due_at
            ),
            answer_due_at=(
                later(resumed.answer_due_at)
                if resumed.approved_at is None
                else resumed.answer_due_at
            ),
            resolution_due_at=later(resumed.resolution_due_at),
        )

    def reopened(self, case: Case, now: datetime) -> Case:
        """A reopened case's deadlines start again from now on its policy: the old ones have
        passed, and a case reopened a week later must not breach at once."""
        policy = self.policy(case)
        if policy is None or case.sla_policy is None:
            return case
        _, due = plan_deadlines(
            self._playbook, case.department, case.priority, now, self._tz, case.sla_policy
        )
        return replace(
            case,
            reaction_due_at=due.reaction,
            first_touch_due_at=due.first_touch,
            answer_due_at=due.answer,
            resolution_due_at=due.resolution,
        )

    def reprioritised(self, case: Case, now: datetime) -> Case:
        """A case whose priority changed, on the policy of its new priority (by_department,
        then by_priority: a person's choice overrides a routing rule's sla_policy). Deadlines
        it has met stay as they were (whether they were kept is history); the others are
        counted from its opening on the new policy, as if it had opened with this priority.
        A case without a policy keeps none."""
        if case.sla_policy is None:
            return case
        name, due = plan_deadlines(
            self._playbook, case.department, case.priority, case.created_at, self._tz
        )
        return replace(
            case,
            sla_policy=name,
            reaction_due_at=due.reaction if case.reacted_at is None else case.reaction_due_at,
            first_touch_due_at=(
                due.first_touch if case.first_touched_at is None else case.first_touch_due_at
            ),
            answer_due_at=due.answer if case.approved_at is None else case.answer_due_at,
            resolution_due_at=due.resolution,
        )

    # --- planning ------------------------------------------------------------------------

    def plan(
        self,
        case: Case,
        now: datetime,
        pending: Sequence[Timer] = (),
        action: Action | None = None,
    ) -> TimerPlan:
        """The timers `case` needs from now on, against what is pending for it. `action` is
        the one that just changed it, if any: stop_on and a manual escalation depend on it."""
        assert case.id is not None
        wanted: list[Timer] = []
        keep: set[int] = set()
        if case.state.is_open and case.follow_up_due_at is not None:
            due = case.follow_up_due_at
            key = f"f:{case.id}:{int(due.timestamp())}"
            wanted.append(Timer(case.id, TimerKind.FOLLOW_UP, due, key, {}))
        policy = self.policy(case)
        running = running_deadlines(case) if policy is not None and not self.paused(case) else []
        chain = self.chain(policy)
        escalated_by_hand = False
        for kind, due in running:
            tag = deadline_tag(case.id, kind, due)
            base = {"deadline": kind, "due": due.isoformat(), "tag": tag}
            assert case.sla_policy is not None
            for point, at in self._reminders_of(case.sla_policy, case.created_at, due):
                if at > now:
                    payload = {**base, "point": point}
                    wanted.append(
                        Timer(case.id, TimerKind.REMINDER, at, f"r:{tag}:{point}", payload)
                    )
            wanted.append(Timer(case.id, TimerKind.BREACH, due, f"b:{tag}", base))
            stopped = chain is None or (action is not None and action in chain.stop_on)
            if action is Action.ESCALATE and chain is not None and due <= now:
                # By hand: the chain goes on after the level just reached, nothing repeats it;
                # one chain for one press, however many deadlines are missed.
                step = self.next_step(chain, case.escalation_level)
                if step is not None and not escalated_by_hand:
                    at = self.in_window(step, now + step.after)
                    wanted.append(self._escalation(case.id, base, step.level, 0, at))
                    escalated_by_hand = True
            elif not stopped:
                keep |= {
                    t.id
                    for t in pending
                    if t.kind is TimerKind.ESCALATION and t.payload.get("tag") == tag and t.id
                }
        pending_keys = {t.key for t in pending}
        wanted_keys = {t.key for t in wanted}
        drop = tuple(
            t.id
            for t in pending
            if t.id is not None and t.key not in wanted_keys and t.id not in keep
        )
        add = tuple(t for t in wanted if t.key not in pending_keys)
        return TimerPlan(drop, add)

    def _reminders_of(
        self, policy_name: str, start: datetime, due: datetime
    ) -> tuple[tuple[str, datetime], ...]:
        # A batch of mentions opens many cases at one moment with one policy: same reminders.
        key = (policy_name, start, due)
        found = self._reminder_cache.get(key)
        if found is None:
            if len(self._reminder_cache) >= _CACHE:
                self._reminder_cache.clear()
            policy = self._playbook.sla.policies[policy_name]
            found = self._reminder_cache[key] = tuple(self.reminders(policy, start, due))
        return found

    def reminders(
        self, policy: SlaPolicy, start: datetime, due: datetime
    ) -> list[tuple[str, datetime]]:
        """Each reminder point of the policy ('80%', '-15m') and when it fires, as
        bot.sla.calendar.reminder_times counts them; points falling on one moment fire once."""
        calendar = self._calendar(policy)
        allowed = working_time_between(calendar, start, due, self._tz)
        found: dict[datetime, str] = {}
        for reminder in policy.reminders:
            if reminder.elapsed(allowed) is None:
                continue
            if reminder.fraction is not None:
                at = add_working_time(calendar, start, allowed * reminder.fraction, self._tz)
            else:
                assert reminder.before is not None
                at = subtract_working_time(calendar, due, reminder.before, self._tz)
            if start < at <= due:
                found.setdefault(at, str(reminder))
        return sorted(((point, at) for at, point in found.items()), key=lambda p: p[1])

    # --- escalation ----------------------------------------------------------------------

    @staticmethod
    def next_step(chain: EscalationChain, level: int) -> EscalationStep | None:
        """The first step above `level`."""
        return next((s for s in chain.steps if s.level > level), None)

    def first_escalation(self, case: Case, breach: Timer) -> Timer | None:
        """The chain's first notice after a breach: the first step above the level the case
        already has (a person may have escalated before the deadline)."""
        chain = self.chain(self.policy(case))
        if chain is None:
            return None
        step = self.next_step(chain, case.escalation_level)
        if step is None:
            return None
        at = self.in_window(step, breach.due_at + step.after)
        return self._escalation(case.id or breach.case_id, breach.payload, step.level, 0, at)

    def next_escalation(self, case: Case, fired: Timer) -> Timer | None:
        """After one notice: the step's next repeat, or the next step after its wait."""
        chain = self.chain(self.policy(case))
        if chain is None:
            return None
        level, repeat = int(fired.payload["level"]), int(fired.payload["repeat"])
        step = next((s for s in chain.steps if s.level == level), None)
        if step is not None and step.repeat_every is not None and repeat < step.max_repeats:
            at = self.in_window(step, fired.due_at + step.repeat_every)
            return self._escalation(fired.case_id, fired.payload, level, repeat + 1, at)
        following = self.next_step(chain, max(level, case.escalation_level))
        if following is None:
            return None
        at = self.in_window(following, fired.due_at + following.after)
        return self._escalation(fired.case_id, fired.payload, following.level, 0, at)

    def step(self, case: Case, level: int) -> EscalationStep | None:
        chain = self.chain(self.policy(case))
        if chain is None:
            return None
        return next((s for s in chain.steps if s.level == level), None)

    def in_window(self, step: EscalationStep, at: datetime) -> datetime:
        """`at`, or the next opening of the step's window (organisation time)."""
        window = step.window
        if window is None:
            return at
        local = at.astimezone(self._tz)
        if window.contains(local.time()):
            return at
        day = local.date()
        opens = _local(day, window.start, self._tz)
        if opens <= at:
            opens = _local(day + _DAY, window.start, self._tz)
        return opens

    @staticmethod
    def _escalation(
        case_id: int, base: dict[str, Any], level: int, repeat: int, at: datetime
    ) -> Timer:
        payload = {
            "deadline": base["deadline"],
            "due": base["due"],
            "tag": base["tag"],
            "level": level,
            "repeat": repeat,
        }
        key = f"e:{base['tag']}:{level}:{repeat}"
        return Timer(case_id, TimerKind.ESCALATION, at, key, payload)

    # --- firing --------------------------------------------------------------------------

    def still_current(self, case: Case, timer: Timer) -> bool:
        """Whether a due timer still means something: the case is open, the deadline it
        belongs to is still the current one and the clock is running (or the follow-up is
        still the one asked for)."""
        if not case.state.is_open:
            return False
        if timer.kind is TimerKind.FOLLOW_UP:
            return case.follow_up_due_at is not None and case.follow_up_due_at == timer.due_at
        if self.paused(case) or case.id is None:
            return False
        tag = timer.payload.get("tag")
        return any(tag == deadline_tag(case.id, *phase) for phase in running_deadlines(case))


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """A wall-clock minute of a local date as an aware UTC-comparable moment."""
    hours, minute = divmod(minutes, 60)
    if hours >= 24:
        return datetime.combine(day + _DAY, time(), tzinfo=tz)
    return datetime.combine(day, time(hours, minute), tzinfo=tz)
