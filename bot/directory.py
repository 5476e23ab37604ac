"""Staff from the config as Actors, looked up by the id each transport gives us."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config, StaffMember
from bot.model import GlobalRole
from bot.rights import Actor


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a department's cards go on one transport."""

    transport: str
    chat: str
    thread: str | None = None


class Directory:
    def __init__(self, config: Config, transports: frozenset[str] = frozenset()) -> None:
        self._config = config
        self.transports = transports  # transports that are configured and running

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

    def on_duty(self) -> list[str]:
        """Names of the staff with the duty role (the rota comes with the SLA engine)."""
        return [m.name for m in self._config.staff if GlobalRole.DUTY in m.global_roles]

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
        return found
