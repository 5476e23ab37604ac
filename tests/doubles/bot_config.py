"""The config of a whole bot on the Telegram test server, as end-to-end tests and benches
start it in-process (App) or as `otklik run`: the shipped playbook, departments with chats of
their own, the API for mentions. One template; each caller says what differs.

Used by tests/e2e/test_burst_telegram.py, test_crash_safety.py, test_shared_limits_telegram.py
and bench/crisis_burst.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.doubles.support import ROOT

DEPARTMENTS = {
    "housing": "ЖКХ",
    "transport": "Транспорт",
    "health": "Здравоохранение",
    "education": "Образование",
    "social": "Соцзащита",
    "coordination": "ЦУР",
}
DUTY = (
    "{id: duty, name: Дарья Морозова, telegram_id: 1005,\n"
    "     roles: {coordination: [specialist]}, global_roles: [duty]}"
)
# The shipped approval.yaml asks them at the high and critical tiers: without them the bot
# refuses to start.
PRESS = "{id: press, name: Пресс-секретарь, telegram_id: %d, global_roles: [press_secretary]}"
HEAD = "{id: head, name: Глава, telegram_id: %d, global_roles: [leadership]}"
STAFF = (DUTY, PRESS % 1006, HEAD % 1007)


@dataclass(frozen=True)
class Source:
    """An API source: `token` may be a ${VARIABLE} the process's environment fills."""

    name: str
    token: str
    scopes: tuple[str, ...] = ("ingest", "read")


def telegram_bot_config(
    *,
    database_url: str,
    api_base: str,
    token: str,
    scale: float,
    chats: Mapping[str, int],
    api_port: int = 0,
    sources: Sequence[Source] = (),
    metrics: bool = True,
    poll_s: float = 0.05,
    max_retry_s: float = 2,
    staff: Sequence[str] = STAFF,
) -> str:
    """`chats`: department id (of DEPARTMENTS, coordination among them) -> its chat's id.
    `scale`: Telegram's limits that many times faster, as the test server runs them."""
    lines = [
        "organisation: Администрация Энской области",
        "locale: ru",
        "timezone: Europe/Moscow",
        "log_level: WARNING",
        f'database: {{url: "{database_url}"}}',
        f'playbooks: {{path: "{ROOT}/playbooks/default", templates: "{ROOT}/playbooks/templates"}}',
        "telegram:",
        f'  token: "{token}"',
        f'  api_base: "{api_base}"',
        f"  limits: {{scale: {scale}}}",
        "api:",
        f'  listen: "127.0.0.1:{api_port}"',
    ]
    if sources:
        lines.append("  sources:")
        lines += [
            f'    - {{name: {s.name}, token: "{s.token}", scopes: [{", ".join(s.scopes)}]}}'
            for s in sources
        ]
    if metrics:
        lines.append('metrics: {listen: "127.0.0.1:0"}')
    lines.append(
        f"outbox: {{poll_interval_s: {poll_s}, base_retry_s: {poll_s}, max_retry_s: {max_retry_s}}}"
    )
    lines.append("departments:")
    lines += [
        f"  - {{id: {d}, name: {DEPARTMENTS[d]}, telegram: {{chat_id: {chat}}}}}"
        for d, chat in chats.items()
    ]
    lines.append("coordination_department: coordination")
    if staff:
        lines.append("staff:")
        lines += [f"  - {member}" for member in staff]
    return "\n".join(lines) + "\n"
