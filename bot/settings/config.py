"""Configuration: one YAML file, `${VAR}` substitution for secrets, validated by pydantic.

Every mistake is reported as `file: field.path: message`, all at once, so an operator can fix
the file in one pass instead of one restart per typo.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.model import MAX_NAME, DeptRole, GlobalRole
from bot.settings.yamlfile import StrictLoader
from bot.sla.duty import DutyConfig, check_duty_staff

__all__ = [
    "ApiConfig",
    "ApiScope",
    "ApiSource",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "Department",
    "DepartmentMatrix",
    "DepartmentTelegram",
    "DigestConfig",
    "DigestRecipients",
    "MatrixConfig",
    "OutboxConfig",
    "PlaybooksConfig",
    "StaffMember",
    "TelegramConfig",
    "TelegramLimitsConfig",
    "load_config",
]


class ConfigError(Exception):
    """The config file cannot be used. `problems` holds (field path, message) pairs."""

    def __init__(self, file: Path, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.file}: {path}: {message}" if path else f"{self.file}: {message}"
            for path, message in self.problems
        )


class _Problems(ValueError):
    """Raised by validators that know exact sub-paths; load_config unpacks it into ConfigError.

    Paths are relative to the model that raised it (pydantic supplies that model's location).
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))


def _join(prefix: str, rest: str | int) -> str:
    if isinstance(rest, int):
        return f"{prefix}[{rest}]"
    if not prefix:
        return rest
    if not rest:
        return prefix
    return f"{prefix}{rest}" if rest.startswith("[") else f"{prefix}.{rest}"


def _loc_path(loc: Iterable[str | int]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path


# --- reusable field types -------------------------------------------------------------------

_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MATRIX_USER_RE = re.compile(r"^@[^:\s]+:\S+$")
_MATRIX_ROOM_RE = re.compile(r"^![^:\s]+:\S+$")
_TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_CRON_FIELD_RE = re.compile(r"^[0-9*/,A-Za-z-]+$")
# Fragments that only a copied example would contain; long enough not to hit random tokens.
_PLACEHOLDER_PARTS = (
    "changeme",
    "change_me",
    "change-me",
    "your-",
    "your_",
    "placeholder",
    "replace",
    "<",
    ">",
)
# The sample token from Telegram's own documentation.
_TELEGRAM_DOCS_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(
            f"invalid id {value!r}: use 1-32 lowercase Latin letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return value


def _check_matrix_user(value: str) -> str:
    if value and not _MATRIX_USER_RE.match(value):
        raise ValueError(f"{value!r} is not a Matrix user id like '@name:example.org'")
    return value


def _check_matrix_room(value: str) -> str:
    if not _MATRIX_ROOM_RE.match(value):
        raise ValueError(
            f"{value!r} is not a Matrix room id like '!abc123:example.org' (aliases do not work)"
        )
    return value


def _check_http_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} must start with http:// or https://")
    return value.rstrip("/")


def _none_to_empty(value: object) -> object:
    # `token:` with nothing after it is YAML null; treat it as "not configured".
    return "" if value is None else value


def _strip(value: object) -> object:
    # Secrets pasted into env files often carry a trailing newline.
    return value.strip() if isinstance(value, str) else value


def _check_not_placeholder(value: str) -> str:
    lowered = value.lower()
    if value == _TELEGRAM_DOCS_TOKEN or any(part in lowered for part in _PLACEHOLDER_PARTS):
        raise ValueError(
            "looks like a placeholder, not a real secret: set it through an environment "
            "variable, or leave it empty to disable this part"
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


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r} must be 'host:port', e.g. '127.0.0.1:8080'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. '[::1]:8080'")
    number = int(port)
    if number > 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    return host, number


_Id = Annotated[str, AfterValidator(_check_id)]
_Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
_MatrixUserId = Annotated[str, AfterValidator(_check_matrix_user)]
_MatrixRoomId = Annotated[str, AfterValidator(_check_matrix_room)]
_Secret = Annotated[
    str,
    BeforeValidator(_none_to_empty),
    BeforeValidator(_strip),
    AfterValidator(_check_not_placeholder),
]
_Cron = Annotated[str, AfterValidator(_check_cron)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections -------------------------------------------------------------------------------


class DatabaseConfig(_Model):
    url: str = "sqlite+aiosqlite:///data/otklik.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # The store runs on asyncio; a sync driver URL would fail only at first query.
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(Otklik needs an async driver)"
            )
        return value


class PlaybooksConfig(_Model):
    # validate_default: the defaults are relative too and must be resolved like given values.
    path: Path = Field(default=Path("playbooks/default"), validate_default=True)
    templates: Path = Field(default=Path("playbooks/templates"), validate_default=True)

    @field_validator("path", "templates")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        # load_config passes the config file's directory so the bot works from any cwd.
        value = value.expanduser()
        base = (info.context or {}).get("base_dir")
        if base is not None and not value.is_absolute():
            value = (Path(base) / value).resolve()
        return value


class TelegramLimitsConfig(_Model):
    """Telegram's published send limits; the bot stays under them instead of collecting 429s."""

    per_chat_per_s: Annotated[float, Field(gt=0)] = 1.0
    per_chat_burst: Annotated[int, Field(gt=0)] = 3
    per_group_per_min: Annotated[int, Field(gt=0)] = 20
    global_per_s: Annotated[float, Field(gt=0)] = 30.0
    scale: Annotated[float, Field(gt=0)] = 1.0  # >1 speeds every limit up; for test servers


class DiscussionGroup(_Model):
    """A channel's discussion group: comments there by non-staff become mentions."""

    chat_id: int
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


class TelegramConfig(_Model):
    token: Annotated[str, BeforeValidator(_none_to_empty), BeforeValidator(_strip)] = ""
    api_base: Annotated[str, AfterValidator(_check_http_url)] = "https://api.telegram.org"
    protect_content: bool = True
    limits: TelegramLimitsConfig = Field(default_factory=TelegramLimitsConfig)
    discussion_groups: list[DiscussionGroup] = Field(default_factory=list)
    direct_messages: bool = False  # citizens' private messages to the bot become mentions

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        if not value:
            return value
        _check_not_placeholder(value)
        if not _TELEGRAM_TOKEN_RE.match(value):
            raise ValueError(
                "does not look like a Telegram bot token ('<bot id>:<secret>' from @BotFather); "
                "leave it empty to disable Telegram"
            )
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.token)


class MatrixConfig(_Model):
    homeserver: Annotated[str, BeforeValidator(_none_to_empty), AfterValidator(_check_http_url)] = (
        ""
    )
    user_id: Annotated[_MatrixUserId, BeforeValidator(_none_to_empty)] = ""
    access_token: _Secret = ""
    device_id: Annotated[str, BeforeValidator(_none_to_empty)] = ""  # optional

    @property
    def enabled(self) -> bool:
        return bool(self.homeserver and self.user_id and self.access_token)


ApiScope = Literal["ingest", "read"]


def _default_scopes() -> list[ApiScope]:
    return ["ingest"]


class SourceMapping(_Model):
    """How a monitoring service's own JSON (or a spreadsheet's columns) becomes a mention.

    `fields` maps our field names (external_id, text, url, published_at, language, sentiment,
    reach, codes, story_id, reply_to_url, author.id, author.name, author.channel,
    author.profile_url, author.email, author.phone) to a dotted path in the source's record
    ("post.author.id", "items.0.text") or, for spreadsheets, to a column title. `constants`
    fills fields the source does not send. `date_format` is a strptime format for
    published_at when it is not ISO 8601. `sentiment_values` translates the source's words
    ("neg", "-1", "негатив") to negative / neutral / positive.
    """

    fields: dict[str, Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=dict
    )
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict)
    date_format: str | None = None
    sentiment_values: dict[str, Literal["negative", "neutral", "positive"]] = Field(
        default_factory=dict
    )


class ApiSource(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
    token: _Secret = ""  # empty: the source is configured but cannot authenticate yet
    scopes: list[ApiScope] = Field(default_factory=_default_scopes)
    mapping: str | None = None  # a name from `mappings`: the source sends its own JSON

    @property
    def enabled(self) -> bool:
        return bool(self.token)


class FeedSource(_Model):
    """An RSS or Atom feed polled on a schedule (conditional GET)."""

    # 60: "rss:" + the name must fit the 64-character source column.
    name: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^\S+$")]
    url: Annotated[str, AfterValidator(_check_http_url)]
    interval_s: Annotated[float, Field(ge=10)] = 300.0
    sentiment: Literal["negative", "neutral", "positive"] | None = None  # else classified
    codes: list[str] = Field(default_factory=list)


class ApiConfig(_Model):
    listen: str = "127.0.0.1:8080"
    sources: list[ApiSource] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        _split_listen(value)
        return value

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class DepartmentTelegram(_Model):
    chat_id: int
    topic_id: Annotated[int, Field(gt=0)] | None = None  # forum topic inside the chat


class DepartmentMatrix(_Model):
    room_id: _MatrixRoomId


class Department(_Model):
    id: _Id
    name: _Name
    telegram: DepartmentTelegram | None = None
    matrix: DepartmentMatrix | None = None


class StaffMember(_Model):
    id: _Id
    name: _Name
    telegram_id: int | None = None
    matrix_id: _MatrixUserId | None = None
    roles: dict[str, list[DeptRole]] = Field(default_factory=dict)  # department id -> roles
    global_roles: list[GlobalRole] = Field(default_factory=list)


class DigestRecipients(_Model):
    telegram_chat_ids: list[int] = Field(default_factory=list)
    matrix_room_ids: list[_MatrixRoomId] = Field(default_factory=list)


class DigestConfig(_Model):
    evening_cron: _Cron = "0 19 * * *"
    weekly_cron: _Cron = "0 10 * * mon"
    # The digests' day and cron times; None: the organisation's time zone.
    timezone: str | None = None
    recipients: DigestRecipients = Field(default_factory=DigestRecipients)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like 'Europe/Moscow')"
            ) from None
        return value


class OutboxConfig(_Model):
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    base_retry_s: Annotated[float, Field(gt=0)] = 1.0
    max_retry_s: Annotated[float, Field(gt=0)] = 300.0

    @model_validator(mode="after")
    def _retry_order(self) -> Self:
        if self.max_retry_s < self.base_retry_s:
            raise _Problems(
                [("max_retry_s", f"must be at least base_retry_s ({self.base_retry_s})")]
            )
        return self


class Config(_Model):
    organisation: str = Field(default="", max_length=MAX_NAME)
    locale: Literal["ru", "en"] = "ru"
    timezone: str = "Europe/Moscow"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    playbooks: PlaybooksConfig = Field(default_factory=PlaybooksConfig)
    telegram: TelegramConfig | None = None
    matrix: MatrixConfig | None = None
    api: ApiConfig = Field(default_factory=ApiConfig)
    departments: list[Department]
    coordination_department: str
    staff: list[StaffMember] = Field(default_factory=list)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    mappings: dict[str, SourceMapping] = Field(default_factory=dict)
    feeds: list[FeedSource] = Field(default_factory=list)
    duty: DutyConfig | None = None  # None: whoever has the duty role is on duty

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like 'Europe/Moscow')"
            ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        problems = [*_check_departments(self), *_check_staff(self), *_check_api_sources(self)]
        if self.duty is not None:
            staff_ids = {member.id for member in self.staff}
            problems += [
                (f"duty.{path}", message)
                for path, message in check_duty_staff(self.duty, staff_ids)
            ]
        if problems:
            raise _Problems(problems)
        return self

    # --- derived values and lookups (built once; the model is frozen) ---

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram is not None and self.telegram.enabled

    @property
    def matrix_enabled(self) -> bool:
        return self.matrix is not None and self.matrix.enabled

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


def _unknown_department(dept_id: str, known: Iterable[str]) -> str:
    message = f"unknown department {dept_id!r}"
    close = difflib.get_close_matches(dept_id, list(known), n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


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
            ("coordination_department", _unknown_department(config.coordination_department, first))
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
                    (f"staff[{i}].roles.{dept_id}", _unknown_department(dept_id, dept_ids))
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
        return {k: _substitute(v, env, _join(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, _join(path, i), problems) for i, v in enumerate(node)]
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


# --- YAML -----------------------------------------------------------------------------------


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        message += exc.problem or exc.context or "syntax error"
        start = exc.context_mark
        # Unclosed brackets and quotes are noticed far below where they start; say where.
        if exc.problem and exc.context and start is not None and start.line != mark.line:
            message += f" ({exc.context} started at line {start.line + 1})"
        return message
    return f"invalid YAML: {exc}"


# --- pydantic errors ------------------------------------------------------------------------


def _model_at(loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model class that the error location points into, to suggest valid keys."""
    current: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue  # list index: the annotation already yielded the item model
        if current is None or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation if issubclass(annotation, BaseModel) else None
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _convert(error: Any) -> list[tuple[str, str]]:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    path = _loc_path(loc)
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _Problems):
        return [(_join(path, sub), message) for sub, message in cause.problems]
    if isinstance(cause, Exception):
        return [(path, str(cause))]  # our own ValueError text, without pydantic's prefix
    if error["type"] == "extra_forbidden":
        return [(path, "unknown key" + _key_hint(loc))]
    if error["type"] == "missing":
        return [(path, "missing required key")]
    return [(path, error["msg"])]


def _key_hint(loc: tuple[str | int, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(known)})"


# --- entry point ----------------------------------------------------------------------------


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute `${VAR}` / `${VAR:-default}`, validate. Raises ConfigError."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [("", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [("", f"not valid UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc.strerror}")]) from None

    try:
        raw = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(path, [("", _yaml_problem(exc))]) from None
    if raw is None:
        raise ConfigError(path, [("", "the file is empty; expected a mapping of settings")])
    if not isinstance(raw, dict):
        raise ConfigError(
            path, [("", f"the top level must be a mapping of settings, not a {type(raw).__name__}")]
        )

    problems: list[tuple[str, str]] = []
    data = _substitute(raw, env, "", problems)
    if problems:
        raise ConfigError(path, problems)
    # An absent section would get its defaults without validation, hence unresolved paths.
    if data.get("playbooks") is None:
        data["playbooks"] = {}

    try:
        return Config.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        converted = [p for err in exc.errors(include_url=False) for p in _convert(err)]
        raise ConfigError(path, converted) from None
