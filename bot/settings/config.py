"""Configuration: one YAML file, `${VAR}` substitution for secrets, validated by pydantic.

Every mistake is reported as `file: field.path: message`, all at once, so an operator can fix
the file in one pass instead of one restart per typo.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.model import MAX_NAME, DeptRole, GlobalRole
from bot.settings.connections import (
    ApiConfig,
    FeedSource,
    FormConfig,
    MatrixConfig,
    MatrixRoomId,
    MatrixUserId,
    MetricsConfig,
    SandboxConfig,
    SourceMapping,
    TelegramConfig,
    VkConfig,
    is_room_alias,
)
from bot.settings.duty_rules import DutyConfig, check_duty_staff
from bot.settings.errors import (
    FieldProblems,
    SettingsError,
    field_problems,
    join_path,
    unknown_name,
)
from bot.settings.fields import Locale, StrictModel, TimeZoneName
from bot.settings.mail import EmailConfig
from bot.settings.yamlfile import YamlError, read_yaml, top_level_problem

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "Department",
    "DepartmentMatrix",
    "DepartmentTelegram",
    "DigestConfig",
    "DigestRecipients",
    "ModelConfig",
    "OutboxConfig",
    "PlaybooksConfig",
    "StaffMember",
    "load_config",
]


class ConfigError(SettingsError):
    """The config file cannot be used; `problems` lists every (file, field path, message)."""


# --- reusable field types -------------------------------------------------------------------

_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CRON_FIELD_RE = re.compile(r"^[0-9*/,A-Za-z-]+$")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(
            f"invalid id {value!r}: use 1-32 lowercase Latin letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {value!r} must have 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for field in fields:
        if not _CRON_FIELD_RE.match(field):
            raise ValueError(
                f"cron field {field!r} may contain only digits, names, '*', '/', ',' and '-'"
            )
    return value


_Id = Annotated[str, AfterValidator(_check_id)]
_Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
_Cron = Annotated[str, AfterValidator(_check_cron)]


# --- sections -------------------------------------------------------------------------------


class DatabaseConfig(StrictModel):
    # validate_default: the default SQLite path is relative, resolved like a given one.
    url: str = Field(default="sqlite+aiosqlite:///data/otklik.db", validate_default=True)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str, info: ValidationInfo) -> str:
        # The store runs on asyncio; a sync driver URL would fail only at first query.
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(Otklik needs an async driver)"
            )
        base = (info.context or {}).get("base_dir")
        return _sqlite_against(value, Path(base)) if base is not None else value


_SQLITE_PREFIX = "sqlite+aiosqlite:///"


def _sqlite_against(url: str, base: Path) -> str:
    """A relative SQLite file path made absolute against the config file's directory, so that
    the database does not move with the working directory (systemd starts in /). Absolute
    paths, `:memory:`, URI filenames (`file:...`) and PostgreSQL URLs stay as they are."""
    if not url.startswith(_SQLITE_PREFIX):
        return url
    rest = url[len(_SQLITE_PREFIX) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith(("/", "file:")):
        return url
    resolved = (base / Path(path).expanduser()).resolve()
    return f"{_SQLITE_PREFIX}{resolved}{sep}{query}"


def _resolve_against_config(cls: type[StrictModel], value: Path, info: ValidationInfo) -> Path:
    # load_config passes the config file's directory so the bot works from any cwd.
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = (Path(base) / value).resolve()
    return value


class PlaybooksConfig(StrictModel):
    # validate_default: the defaults are relative too and must be resolved like given values.
    path: Path = Field(default=Path("playbooks/default"), validate_default=True)
    templates: Path = Field(default=Path("playbooks/templates"), validate_default=True)

    _relative_to_config = field_validator("path", "templates")(_resolve_against_config)


class DepartmentTelegram(StrictModel):
    chat_id: int
    topic_id: Annotated[int, Field(gt=0)] | None = None  # forum topic inside the chat


class DepartmentMatrix(StrictModel):
    room_id: MatrixRoomId


class Department(StrictModel):
    id: _Id
    name: _Name
    telegram: DepartmentTelegram | None = None
    matrix: DepartmentMatrix | None = None


class StaffMember(StrictModel):
    id: _Id
    name: _Name
    telegram_id: int | None = None
    matrix_id: MatrixUserId | None = None
    roles: dict[str, list[DeptRole]] = Field(default_factory=dict)  # department id -> roles
    global_roles: list[GlobalRole] = Field(default_factory=list)


class OfficialIdentity(StrictModel):
    """An account that speaks for the organisation or an authority (a ministry's page)."""

    channel: Annotated[str, Field(min_length=1, max_length=64)]
    external_id: Annotated[str, Field(min_length=1, max_length=256)]


class OfficialConfig(StrictModel):
    """Official information is not a complaint: mentions from these sources and identities
    (and from sources flagged `official` under api.sources and feeds, and authors labelled
    `official`) are stored as neutral and open no case unless staff say so (/negative)."""

    sources: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    identities: list[OfficialIdentity] = Field(default_factory=list)


class DigestRecipients(StrictModel):
    telegram_chat_ids: list[int] = Field(default_factory=list)
    matrix_room_ids: list[MatrixRoomId] = Field(default_factory=list)


class DigestConfig(StrictModel):
    evening_cron: _Cron = "0 19 * * *"
    weekly_cron: _Cron = "0 10 * * mon"
    # The digests' day and cron times; None: the organisation's time zone.
    timezone: TimeZoneName | None = None
    recipients: DigestRecipients = Field(default_factory=DigestRecipients)


class ModelConfig(StrictModel):
    """The organisation's own sentiment model, learned from staff corrections
    (bot/intake/sentiment/learning.py): where it is kept and when it is retrained."""

    # Relative to the config file's directory, like the playbooks.
    path: Path = Field(default=Path("data/models/sentiment.org.npz"), validate_default=True)
    # None: only `otklik model retrain` retrains.
    retrain_cron: _Cron | None = "30 3 * * *"

    _relative_to_config = field_validator("path")(_resolve_against_config)


class RetentionConfig(StrictModel):
    """How long citizens' personal data is kept (bot/cases/erasure.py, a daily job)."""

    # Personal data of cases closed longer ago than this, and of mentions that opened no case
    # received before then, is erased. None: kept until `otklik authors forget`.
    personal_data_months: Annotated[int, Field(ge=1, le=1200)] | None = None
    cron: _Cron = "45 3 * * *"  # when the daily pass runs, in the organisation's time zone


class OutboxConfig(StrictModel):
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    base_retry_s: Annotated[float, Field(gt=0)] = 1.0
    max_retry_s: Annotated[float, Field(gt=0)] = 300.0
    # How long an instance's claim on a message it is sending holds; renewed every third of
    # it while the send runs. An instance that dies holds its chats this long at most.
    lease_s: Annotated[float, Field(ge=5, le=3600)] = 30.0

    @model_validator(mode="after")
    def _retry_order(self) -> Self:
        if self.max_retry_s < self.base_retry_s:
            raise FieldProblems(
                [("max_retry_s", f"must be at least base_retry_s ({self.base_retry_s})")]
            )
        return self


class InstanceConfig(StrictModel):
    """This process among several on one PostgreSQL database ("Running several instances")."""

    # Names the process in outbox claims, /metrics and the logs; empty: host name and pid,
    # new at every start (a restarted process owns none of its predecessor's claims).
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    # On PostgreSQL: how often a follower tries to become the leader, and the leader checks
    # that it still is. A dead leader is replaced within about this long.
    leader_check_s: Annotated[float, Field(ge=0.5, le=60)] = 5.0


class AttachmentsConfig(StrictModel):
    """Photos and files that come with mentions (Telegram comments and DMs, the API)."""

    # A photo up to this size is posted under its card (by reference, never downloaded);
    # larger ones, and every other file, are only listed on the card.
    forward_max_mb: Annotated[float, Field(ge=0, le=2048)] = 10.0


class Config(StrictModel):
    organisation: str = Field(default="", max_length=MAX_NAME)
    locale: Locale = "ru"
    timezone: TimeZoneName = "Europe/Moscow"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # plain: one readable line per record; json: one JSON object per line (log collectors).
    log_format: Literal["plain", "json"] = "plain"
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    playbooks: PlaybooksConfig = Field(default_factory=PlaybooksConfig)
    telegram: TelegramConfig | None = None
    matrix: MatrixConfig | None = None
    vk: VkConfig | None = None  # the VK community page (handlers/vk)
    email: EmailConfig | None = None  # a mailbox whose letters are mentions
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    form: FormConfig = Field(default_factory=FormConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    departments: list[Department]
    coordination_department: str
    staff: list[StaffMember] = Field(default_factory=list)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    attachments: AttachmentsConfig = Field(default_factory=AttachmentsConfig)
    mappings: dict[str, SourceMapping] = Field(default_factory=dict)
    feeds: list[FeedSource] = Field(default_factory=list)
    official: OfficialConfig = Field(default_factory=OfficialConfig)
    duty: DutyConfig | None = None  # None: whoever has the duty role is on duty

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        problems = [*_check_departments(self), *_check_staff(self), *_check_api_sources(self)]
        if self.metrics.port and self.metrics.listen == self.api.listen:  # port 0: any free
            problems.append(
                (
                    "metrics.listen",
                    "is the API's address: give /metrics an address of its own, or leave "
                    "listen empty and set a token to serve it on the API's port",
                )
            )
        if self.duty is not None:
            staff_ids = {member.id for member in self.staff}
            problems += [
                (f"duty.{path}", message)
                for path, message in check_duty_staff(self.duty, staff_ids)
            ]
        if problems:
            raise FieldProblems(problems)
        return self

    # --- derived values and lookups (built once; the model is frozen) ---

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def instance_name(self) -> str:
        """Who this process is to the other instances (config `instance.name`)."""
        if self.instance.name:
            return self.instance.name
        return f"{socket.gethostname()[:48]}-{os.getpid()}"

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram is not None and self.telegram.enabled

    @property
    def matrix_enabled(self) -> bool:
        return self.matrix is not None and self.matrix.enabled

    @property
    def vk_enabled(self) -> bool:
        return self.vk is not None and self.vk.enabled

    @property
    def matrix_room_aliases(self) -> list[str]:
        """The room aliases among the configured rooms, each once: resolved to ids at start
        (handlers/matrix/aliases.py), before anything keys on a room."""
        rooms = [d.matrix.room_id for d in self.departments if d.matrix is not None]
        rooms += self.digest.recipients.matrix_room_ids
        return list(dict.fromkeys(room for room in rooms if is_room_alias(room)))

    @property
    def email_enabled(self) -> bool:
        return self.email is not None and self.email.enabled

    @property
    def sandbox_enabled(self) -> bool:
        """The browser chat runs when asked to, or, unless switched off, when no messenger is
        configured."""
        if self.sandbox.enabled is not None:
            return self.sandbox.enabled
        return not (self.telegram_enabled or self.matrix_enabled)

    @cached_property
    def official_sources(self) -> frozenset[str]:
        """Source names whose mentions are official information."""
        return frozenset(
            [
                *self.official.sources,
                *(s.name for s in self.api.sources if s.official),
                *(f.source for f in self.feeds if f.official),
            ]
        )

    @cached_property
    def triage_skipped_sources(self) -> frozenset[str]:
        """Sources whose uncertain mentions stay off the triage list (`triage: false`).
        Telegram comments and private messages are the organisation's own: always listed."""
        return frozenset(
            [
                *(s.name for s in self.api.sources if not s.triage),
                *(f.source for f in self.feeds if not f.triage),
            ]
        )

    @cached_property
    def official_identities(self) -> frozenset[tuple[str, str]]:
        """(channel, external id) of the accounts that speak officially."""
        return frozenset((i.channel, i.external_id) for i in self.official.identities)

    @cached_property
    def department_ids(self) -> frozenset[str]:
        return frozenset(self._departments_by_id)

    @cached_property
    def _departments_by_id(self) -> dict[str, Department]:
        return {d.id: d for d in self.departments}

    @cached_property
    def _staff_by_id(self) -> dict[str, StaffMember]:
        return {s.id: s for s in self.staff}

    @cached_property
    def _staff_by_telegram_id(self) -> dict[int, StaffMember]:
        return {s.telegram_id: s for s in self.staff if s.telegram_id is not None}

    @cached_property
    def _staff_by_matrix_id(self) -> dict[str, StaffMember]:
        return {s.matrix_id: s for s in self.staff if s.matrix_id is not None}

    def department(self, department_id: str) -> Department | None:
        return self._departments_by_id.get(department_id)

    def staff_member(self, staff_id: str) -> StaffMember | None:
        return self._staff_by_id.get(staff_id)

    def staff_by_telegram(self, user_id: int) -> StaffMember | None:
        return self._staff_by_telegram_id.get(user_id)

    def staff_by_matrix(self, user_id: str) -> StaffMember | None:
        return self._staff_by_matrix_id.get(user_id)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # The copy would otherwise keep the indexes of the original (e.g. after update={"staff"}).
        copy = super().model_copy(update=update, deep=deep)
        for name, attr in vars(Config).items():
            if isinstance(attr, cached_property):
                copy.__dict__.pop(name, None)
        return copy


def _check_departments(config: Config) -> list[tuple[str, str]]:
    if not config.departments:
        return [("departments", "at least one department is required")]
    problems: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, dept in enumerate(config.departments):
        if dept.id in first:
            problems.append(
                (
                    f"departments[{i}].id",
                    f"duplicate department id {dept.id!r} (also departments[{first[dept.id]}])",
                )
            )
        first.setdefault(dept.id, i)
    if config.coordination_department not in first:
        problems.append(
            (
                "coordination_department",
                unknown_name("department", config.coordination_department, first, listed_as=None),
            )
        )
    return problems


def _check_staff(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    dept_ids = {d.id for d in config.departments}
    first: dict[tuple[str, object], int] = {}  # (field, value) -> index of its first holder
    for i, member in enumerate(config.staff):
        for field, value in (
            ("id", member.id),
            ("telegram_id", member.telegram_id),
            ("matrix_id", member.matrix_id),
        ):
            if value is None:
                continue
            if (field, value) in first:
                what = "staff id" if field == "id" else field
                problems.append(
                    (
                        f"staff[{i}].{field}",
                        f"duplicate {what} {value!r} (also staff[{first[field, value]}])",
                    )
                )
            first.setdefault((field, value), i)
        for dept_id in member.roles:
            if dept_id not in dept_ids:
                problems.append(
                    (
                        f"staff[{i}].roles.{dept_id}",
                        unknown_name("department", dept_id, dept_ids, listed_as=None),
                    )
                )
    return problems


def _check_api_sources(config: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for i, source in enumerate(config.api.sources):
        if source.name in names:
            problems.append(
                (
                    f"api.sources[{i}].name",
                    f"duplicate source name {source.name!r} "
                    f"(also api.sources[{names[source.name]}])",
                )
            )
        names.setdefault(source.name, i)
        # A shared token would make it impossible to tell which source sent a request.
        if source.token and source.token in tokens:
            problems.append(
                (f"api.sources[{i}].token", f"same token as api.sources[{tokens[source.token]}]")
            )
        tokens.setdefault(source.token, i)
        if source.mapping is not None and source.mapping not in config.mappings:
            known = ", ".join(sorted(config.mappings)) or "none defined"
            problems.append(
                (f"api.sources[{i}].mapping", f"unknown mapping {source.mapping!r} ({known})")
            )
    feeds: dict[str, int] = {}
    for i, feed in enumerate(config.feeds):
        if feed.name in feeds:
            problems.append((f"feeds[{i}].name", f"duplicate feed name {feed.name!r}"))
        feeds.setdefault(feed.name, i)
    return problems


# --- environment substitution ---------------------------------------------------------------

# `$${` is an escaped literal `${`; a `${` not followed by a valid reference is an error.
_REF_RE = re.compile(r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?")


def _substitute(
    node: Any, env: Mapping[str, str], path: str, problems: list[tuple[str, str]]
) -> Any:
    if isinstance(node, dict):
        # Keys are left alone: they name settings, which must not depend on the environment.
        return {k: _substitute(v, env, join_path(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, join_path(path, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group("name"), match.group("default")
        if name is None:
            problems.append(
                (
                    path,
                    "malformed variable reference: use ${NAME} or "
                    "${NAME:-default} (write $${ for a literal ${)",
                )
            )
            return match.group(0)
        if default is not None and "${" in default:
            problems.append((path, f"nested references in the default of {name} are not supported"))
            return match.group(0)
        value = env.get(name)
        # Shell semantics: `:-` also applies when the variable is set but empty.
        if default is not None and not value:
            return default
        if value is None:
            problems.append((path, f"environment variable {name} is not set"))
            return ""
        return value

    return _REF_RE.sub(replace, node)


# --- entry point ----------------------------------------------------------------------------


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute `${VAR}` / `${VAR:-default}`, validate. Raises ConfigError."""
    path = Path(path)
    env = os.environ if env is None else env

    def fail(problems: list[tuple[str, str]]) -> ConfigError:
        return ConfigError([(path, field, message) for field, message in problems])

    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise fail([("", "file not found")]) from None
    except OSError as exc:
        raise fail([("", f"cannot read the file: {exc.strerror}")]) from None
    except YamlError as exc:
        raise ConfigError(exc.problems) from None
    wrong = top_level_problem(raw)
    if wrong is not None or not isinstance(raw, dict):
        raise fail([("", wrong or "")])

    problems: list[tuple[str, str]] = []
    data = _substitute(raw, env, "", problems)
    if problems:
        raise fail(problems)
    # An absent section would get its defaults without validation, hence unresolved paths.
    for section in ("playbooks", "model", "database", "form"):
        if data.get(section) is None:
            data[section] = {}

    try:
        return Config.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise fail(field_problems(exc, Config)) from None
