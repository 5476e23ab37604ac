"""Staff from the config as Actors, looked up by the id each transport gives us; the chats
of each department as outbox destinations; who is on duty."""

from __future__ import annotations

from datetime import datetime

from bot.clock import Clock, SystemClock
from bot.messages.outbox import Destination
from bot.model import DeptRole, GlobalRole
from bot.settings.config import Config, StaffMember
from bot.staff.duty import DutyShift, who_is_on_duty
from bot.staff.rights import Actor

# The browser chat (handlers/sandbox): one chat per department, named by the department id.
SANDBOX = "sandbox"


class Directory:
    def __init__(
        self,
        config: Config,
        transports: frozenset[str] = frozenset(),
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self.transports = transports  # transports that are configured and running
        self._clock = clock or SystemClock()  # the duty rota depends on the time

    @property
    def attachment_forward_bytes(self) -> int:
        """Photos larger than this are listed on the card, not posted under it."""
        return int(self._config.attachments.forward_max_mb * 1024 * 1024)

    def actor(self, member: StaffMember) -> Actor:
        return Actor(
            id=member.id,
            name=member.name,
            dept_roles={dept: frozenset(roles) for dept, roles in member.roles.items()},
            global_roles=frozenset(member.global_roles),
        )

    def by_staff_id(self, staff_id: str) -> Actor | None:
        member = self._config.staff_member(staff_id)
        return self.actor(member) if member else None

    def by_telegram(self, user_id: int, name: str = "") -> Actor:
        member = self._config.staff_by_telegram(user_id)
        return self.actor(member) if member else Actor.stranger(f"tg:{user_id}", name)

    def by_matrix(self, user_id: str, name: str = "") -> Actor:
        member = self._config.staff_by_matrix(user_id)
        return self.actor(member) if member else Actor.stranger(user_id, name)

    def name_of(self, staff_id: str | None) -> str | None:
        if staff_id is None:
            return None
        member = self._config.staff_member(staff_id)
        return member.name if member else staff_id

    def department_at(self, transport: str, chat: str, thread: str | None = None) -> str | None:
        """The department whose chat (and forum topic, if it has one) this is."""
        for dest_dept in self._config.departments:
            for dest in self.destinations(dest_dept.id):
                if (dest.transport, dest.chat) == (transport, chat) and dest.thread in (
                    None,
                    thread,
                ):
                    return dest_dept.id
        return None

    def in_chat_of(self, department: str, where: Destination) -> bool:
        """Whether `where` is one of the department's chats (its forum topic, if it has one):
        where its cards are posted."""
        return any(
            (dest.transport, dest.chat) == (where.transport, where.chat)
            and dest.thread in (None, where.thread)
            for dest in self.destinations(department)
        )

    def is_work_chat(self, transport: str, chat: str) -> bool:
        """A chat the config names for work: a department's (or the coordination) chat, or a
        digest recipient (the duty officer's and leadership's chats). Commands answer only
        there and in private chats with staff."""
        config = self._config
        if transport == "telegram":
            chats = {d.telegram.chat_id for d in config.departments if d.telegram is not None}
            chats.update(config.digest.recipients.telegram_chat_ids)
            return chat in {str(c) for c in chats}
        if transport == "matrix":
            rooms = {d.matrix.room_id for d in config.departments if d.matrix is not None}
            rooms.update(config.digest.recipients.matrix_room_ids)
            return chat in rooms
        if transport == SANDBOX:
            return any(d.id == chat for d in config.departments)
        return False

    def duty_shift(self, at: datetime | None = None) -> DutyShift:
        """Staff ids on duty at `at` (default: now) and until when: the `duty` rota and its
        overrides; when they name nobody, everyone with the duty role, with no end."""
        at = at or self._clock.now()
        until = None
        if self._config.duty is not None:
            shift = who_is_on_duty(self._config.duty, self._config.tz, at)
            if shift.staff:
                return shift
            until = shift.until  # the duty role stands in until the next override
        role = tuple(m.id for m in self._config.staff if GlobalRole.DUTY in m.global_roles)
        return DutyShift(role, until)

    def on_duty_ids(self, at: datetime | None = None) -> list[str]:
        return list(self.duty_shift(at).staff)

    def on_duty(self, at: datetime | None = None) -> list[str]:
        """Names of the staff on duty at `at` (default: now), for escalations and /duty."""
        return [self.name_of(staff_id) or staff_id for staff_id in self.duty_shift(at).staff]

    def staff(self) -> list[StaffMember]:
        return list(self._config.staff)

    def with_role(self, role: GlobalRole) -> list[StaffMember]:
        return [m for m in self._config.staff if role in m.global_roles]

    def with_department_role(self, department: str, role: DeptRole) -> list[StaffMember]:
        return [m for m in self._config.staff if role in m.roles.get(department, ())]

    @property
    def discussion_chats(self) -> frozenset[str]:
        """The Telegram discussion groups whose comments are mentions: the only chats the bot
        posts approved answers into."""
        telegram = self._config.telegram
        groups = telegram.discussion_groups if telegram is not None else []
        return frozenset(str(group.chat_id) for group in groups)

    @property
    def coordination(self) -> str:
        return self._config.coordination_department

    def department_ids(self) -> list[str]:
        return [d.id for d in self._config.departments]

    def has_department(self, department_id: str) -> bool:
        return self._config.department(department_id) is not None

    def department_name(self, department_id: str) -> str:
        department = self._config.department(department_id)
        return department.name if department else department_id

    def destinations(self, department_id: str) -> list[Destination]:
        department = self._config.department(department_id)
        if department is None:
            return []
        found: list[Destination] = []
        if "telegram" in self.transports and department.telegram is not None:
            topic = department.telegram.topic_id
            found.append(
                Destination(
                    "telegram",
                    str(department.telegram.chat_id),
                    str(topic) if topic is not None else None,
                )
            )
        if "matrix" in self.transports and department.matrix is not None:
            found.append(Destination("matrix", department.matrix.room_id))
        if SANDBOX in self.transports:
            found.append(Destination(SANDBOX, department.id))
        return found
