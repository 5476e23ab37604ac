"""The config's connection sections: Telegram, Matrix, the HTTP API with its sources and
mappings, and RSS feeds; secrets and addresses are checked here, once.

config.py assembles them with the organisation's sections into Config.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.model import MAX_NAME
from bot.settings.errors import FieldProblems
from bot.settings.fields import StrictModel

__all__ = [
    "MIN_TOKEN_LENGTH",
    "RESERVED_SOURCE_NAMES",
    "ApiConfig",
    "ApiScope",
    "ApiSource",
    "DiscussionGroup",
    "FeedSource",
    "FormConfig",
    "MatrixConfig",
    "MatrixRateLimit",
    "MatrixRoomId",
    "MatrixUserId",
    "MetricsConfig",
    "SourceMapping",
    "TelegramConfig",
    "TelegramLimitsConfig",
    "TelegramWebhookConfig",
    "VkConfig",
    "is_room_alias",
    "reserved_source_name",
]

_MATRIX_USER_RE = re.compile(r"^@[^:\s]+:\S+$")
# A room id: "!opaque:server" up to room version 11, "!opaque" from version 12 (the id is the
# hash of the room's create event). An alias ("#name:server") is resolved to an id at start.
_MATRIX_ROOM_RE = re.compile(r"^![^:\s]+(?::\S+)?$")
_MATRIX_ALIAS_RE = re.compile(r"^#[^:\s]+:\S+$")
_TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
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
# Source names the bot gives its own messengers' mentions, and the identity channels it links
# authors by. A configured source named so would pass its mentions off as theirs: a "telegram"
# mention's external id names the chat and message the approved answer is posted under.
RESERVED_SOURCE_NAMES = frozenset({"telegram", "telegram_dm", "matrix", "email", "phone", "form"})
_RESERVED_PREFIXES = ("rss:",)  # feeds' mentions: "rss:<feed name>"
# The VK community page's mentions: "vk:wall", "vk:message", … ("vk" alone stays an ordinary
# source name: monitoring services send VK mentions under it).
_VK_PREFIX = "vk:"


def reserved_source_name(name: str) -> str | None:
    """Why `name` cannot name a configured source or an import; None: it can."""
    folded = name.strip().casefold()
    if folded in RESERVED_SOURCE_NAMES:
        return f"{name!r} is the name of a built-in channel; choose another source name"
    if folded.startswith(_RESERVED_PREFIXES):
        return f"{name!r}: names starting with 'rss:' are the feeds' own"
    if folded.startswith(_VK_PREFIX):
        return f"{name!r}: names starting with 'vk:' are the VK community page's own"
    return None


def _check_source_name(value: str) -> str:
    problem = reserved_source_name(value)
    if problem is not None:
        raise ValueError(problem)
    return value


MIN_TOKEN_LENGTH = 32  # an API bearer token: 32 hex characters are 128 bits

# The sample token from Telegram's own documentation.
_TELEGRAM_DOCS_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


def _check_matrix_user(value: str) -> str:
    if value and not _MATRIX_USER_RE.match(value):
        raise ValueError(f"{value!r} is not a Matrix user id like '@name:example.org'")
    return value


def is_room_alias(value: str) -> bool:
    """A room's alias ("#press-housing:example.org"), which names a room id."""
    return bool(_MATRIX_ALIAS_RE.match(value))


def _check_matrix_room(value: str) -> str:
    if not (_MATRIX_ROOM_RE.match(value) or is_room_alias(value)):
        raise ValueError(
            f"{value!r} is not a Matrix room id like '!abc123:example.org' (or '!abc123' in "
            "rooms of version 12) nor a room alias like '#press-housing:example.org'"
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


MatrixUserId = Annotated[str, AfterValidator(_check_matrix_user)]
MatrixRoomId = Annotated[str, AfterValidator(_check_matrix_room)]
_Secret = Annotated[
    str,
    BeforeValidator(_none_to_empty),
    BeforeValidator(_strip),
    AfterValidator(_check_not_placeholder),
]


MIN_SANDBOX_TOKEN = 32


class SandboxLimitsConfig(StrictModel):
    """The sandbox's own limits (handlers/sandbox): 0 switches a rate limit off."""

    # Messages each sandbox chat keeps in memory for the page (older ones drop off).
    keep_messages: Annotated[int, Field(ge=10, le=5000)] = 300
    # Requests (presses, replies, commands, feeds) per minute from one client; 0: no limit.
    actions_per_minute: Annotated[int, Field(ge=0)] = 0
    # Mentions fed per minute from one client; 0: no limit.
    feeds_per_minute: Annotated[int, Field(ge=0)] = 0


class SandboxConfig(StrictModel):
    """The browser chat (handlers/sandbox). `enabled` empty: on exactly when neither Telegram
    nor Matrix is configured, so a fresh `make run` has something to show."""

    enabled: bool | None = None
    # False: only loopback clients (127.0.0.1, ::1) are served, everyone else gets 403.
    allow_remote: bool = False
    # Required with allow_remote (then every client must present it): at least 32 characters.
    token: _Secret = ""
    limits: SandboxLimitsConfig = Field(default_factory=SandboxLimitsConfig)

    @model_validator(mode="after")
    def _remote_needs_token(self) -> Self:
        if self.allow_remote and len(self.token) < MIN_SANDBOX_TOKEN:
            raise FieldProblems(
                [
                    (
                        "token",
                        f"allow_remote needs a token of at least {MIN_SANDBOX_TOKEN} characters "
                        "(`openssl rand -hex 32`)",
                    )
                ]
            )
        return self


MIN_FORM_SECRET = 32


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network like 10.0.0.0/8") from None
    return value.strip()


class FormConfig(StrictModel):
    """The citizens' web form (handlers/form): GET and POST /form on the API's address."""

    enabled: bool = False
    # Appeals accepted from one client address per hour; 0: no limit.
    per_address_per_hour: Annotated[int, Field(ge=0, le=10_000)] = 5
    # The reverse proxies in front of the bot: only from them is X-Forwarded-For believed.
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)
    # Signs the forms' anti-forgery tokens. Empty: generated once and kept in `secret_file`.
    secret: _Secret = ""
    secret_file: Path = Field(default=Path("data/form.secret"), validate_default=True)
    # How long a loaded form may be sent (the token's lifetime), in minutes.
    token_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 120

    @field_validator("secret_file")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        value = value.expanduser()
        return (Path(base) / value).resolve() if base and not value.is_absolute() else value

    @model_validator(mode="after")
    def _secret_long_enough(self) -> Self:
        if self.secret and len(self.secret) < MIN_FORM_SECRET:
            problem = f"at least {MIN_FORM_SECRET} characters (`openssl rand -hex 32`)"
            raise FieldProblems([("secret", problem)])
        return self


class TelegramLimitsConfig(StrictModel):
    """Telegram's published send limits; the bot stays under them instead of collecting 429s."""

    per_chat_per_s: Annotated[float, Field(gt=0)] = 1.0
    per_chat_burst: Annotated[int, Field(gt=0)] = 3
    per_group_per_min: Annotated[int, Field(gt=0)] = 20
    global_per_s: Annotated[float, Field(gt=0)] = 30.0
    scale: Annotated[float, Field(gt=0)] = 1.0  # >1 speeds every limit up; for test servers


class DiscussionGroup(StrictModel):
    """A channel's discussion group: comments there by non-staff become mentions."""

    chat_id: int
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


# The Bot API's setWebhook: secret_token is 1-256 of A-Z, a-z, 0-9, _ and -.
_TELEGRAM_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramWebhookConfig(StrictModel):
    """Webhook mode (handlers/telegram/webhook.py): Telegram POSTs updates to `url`; the bot
    serves `path` on the API's HTTP server, behind a TLS-terminating reverse proxy."""

    # Where Telegram sends updates: a base ("https://bot.example.org", then `path` is added)
    # or a full URL when the proxy maps another path to `path`.
    url: Annotated[str, BeforeValidator(_none_to_empty), AfterValidator(_check_http_url)] = ""
    path: str = "/telegram/webhook"
    # Empty: derived from the keys and the bot's id (handlers/telegram/webhook.py), so every
    # instance uses the same one and none is stored.
    secret_token: _Secret = ""
    max_connections: Annotated[int, Field(ge=1, le=100)] = 40
    # An update claimed and not done whose claim went unrenewed this long (its instance died;
    # a live one renews it while handling) is handled again when it comes again, by webhook
    # or by a new polling leader.
    reclaim_after_s: Annotated[float, Field(gt=0)] = 60.0

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9/_-]{1,100}", value) or value.startswith("/api/"):
            raise ValueError(
                "a path like /telegram/webhook (letters, digits, / _ -), not under /api/"
            )
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_shape(cls, value: str) -> str:
        if value and not _TELEGRAM_SECRET_RE.match(value):
            raise ValueError("Telegram takes 1 to 256 Latin letters, digits, _ and - here")
        return value

    @property
    def public_url(self) -> str:
        """What setWebhook is given: `url`, with `path` added when `url` has none."""
        return self.url if urlsplit(self.url).path.strip("/") else self.url + self.path


class TelegramConfig(StrictModel):
    token: Annotated[str, BeforeValidator(_none_to_empty), BeforeValidator(_strip)] = ""
    api_base: Annotated[str, AfterValidator(_check_http_url)] = "https://api.telegram.org"
    protect_content: bool = True
    limits: TelegramLimitsConfig = Field(default_factory=TelegramLimitsConfig)
    discussion_groups: list[DiscussionGroup] = Field(default_factory=list)
    direct_messages: bool = False  # citizens' private messages to the bot become mentions
    # How updates arrive: long polling (one process; with several, the leader polls) or a
    # webhook every instance serves (webhook: below).
    mode: Literal["polling", "webhook"] = "polling"
    webhook: TelegramWebhookConfig = Field(default_factory=TelegramWebhookConfig)

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> Self:
        if self.enabled and self.mode == "webhook" and not self.webhook.url:
            raise FieldProblems(
                [("webhook.url", "is needed in webhook mode: where Telegram sends updates")]
            )
        return self

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


VK_API_VERSION: Final = "5.199"
# Callback API secret key: VK's settings page takes up to 50 letters and digits.
_VK_SECRET_RE = re.compile(r"^[A-Za-z0-9]{1,50}$")
_VK_CONFIRMATION_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")


class VkConfig(StrictModel):
    """The organisation's VK community page (handlers/vk): comments and messages come in
    through the Callback API, approved answers go out with the community's own token."""

    group_id: Annotated[int, Field(gt=0)]
    # Community access token (Manage community → API usage → access tokens) with access to
    # community messages and the wall. Empty disables VK.
    token: _Secret = ""
    secret: _Secret = ""  # Callback API "secret key": VK sends it in every event
    confirmation: Annotated[str, BeforeValidator(_none_to_empty), BeforeValidator(_strip)] = ""
    callback_path: str = "/vk/callback"
    api_base: Annotated[str, AfterValidator(_check_http_url)] = "https://api.vk.com"
    # The version the Callback API server is set to in VK and the bot calls methods with:
    # the event objects' shape depends on it, so it is pinned.
    version: Literal["5.199"] = VK_API_VERSION

    @field_validator("secret")
    @classmethod
    def _secret_shape(cls, value: str) -> str:
        if value and not _VK_SECRET_RE.match(value):
            raise ValueError("VK takes 1 to 50 Latin letters and digits as the secret key")
        return value

    @field_validator("confirmation")
    @classmethod
    def _confirmation_shape(cls, value: str) -> str:
        if value and not _VK_CONFIRMATION_RE.match(value):
            raise ValueError(
                "the confirmation string VK shows on the Callback API page is letters and digits"
            )
        return value

    @field_validator("callback_path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9/_-]{1,100}", value) or value.startswith("/api/"):
            raise ValueError("a path like /vk/callback (letters, digits, / _ -), not under /api/")
        return value

    @model_validator(mode="after")
    def _secret_with_token(self) -> Self:
        if self.token and not (self.secret and self.confirmation):
            raise FieldProblems(
                [
                    (
                        "secret" if not self.secret else "confirmation",
                        "is needed with a token: every Callback API event is checked against "
                        "the secret key, and VK confirms the server with the string",
                    )
                ]
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.token)


class MatrixRateLimit(StrictModel):
    """The homeserver's message rate limit for the bot's account (Synapse's `rc_message`;
    its defaults): every message, edit, reaction and redaction counts. The bot stays under
    it instead of collecting M_LIMIT_EXCEEDED. per_second 0: no pacing (the account is
    exempt, e.g. Synapse's admin API override_ratelimit)."""

    per_second: Annotated[float, Field(ge=0)] = 0.2
    burst: Annotated[int, Field(gt=0)] = 10


class MatrixConfig(StrictModel):
    homeserver: Annotated[str, BeforeValidator(_none_to_empty), AfterValidator(_check_http_url)] = (
        ""
    )
    user_id: Annotated[MatrixUserId, BeforeValidator(_none_to_empty)] = ""
    access_token: _Secret = ""
    device_id: Annotated[str, BeforeValidator(_none_to_empty)] = ""  # optional
    rate_limit: MatrixRateLimit = Field(default_factory=MatrixRateLimit)

    @property
    def enabled(self) -> bool:
        return bool(self.homeserver and self.user_id and self.access_token)


ApiScope = Literal["ingest", "read"]


def _default_scopes() -> list[ApiScope]:
    return ["ingest"]


class SourceMapping(StrictModel):
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


class ApiSource(StrictModel):
    name: Annotated[
        str,
        Field(min_length=1, max_length=64, pattern=r"^\S+$"),
        AfterValidator(_check_source_name),
    ]
    token: _Secret = ""  # empty: the source is configured but cannot authenticate yet
    scopes: list[ApiScope] = Field(default_factory=_default_scopes)
    mapping: str | None = None  # a name from `mappings`: the source sends its own JSON
    official: bool = False  # the organisation's own or an authority's: never a complaint
    # Its uncertain mentions wait on the triage list in the coordination chat; false for a
    # broad feed that is not the organisation's own (they are then only counted).
    triage: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.token)


class FeedSource(StrictModel):
    """An RSS or Atom feed polled on a schedule (conditional GET)."""

    # 60: "rss:" + the name must fit the 64-character source column.
    name: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^\S+$")]
    url: Annotated[str, AfterValidator(_check_http_url)]
    interval_s: Annotated[float, Field(ge=10)] = 300.0
    sentiment: Literal["negative", "neutral", "positive"] | None = None  # else classified
    codes: list[str] = Field(default_factory=list)
    official: bool = False  # e.g. the organisation's own news: never a complaint
    triage: bool = True  # uncertain mentions go to the triage list (as ApiSource.triage)

    @property
    def source(self) -> str:
        """The source name its mentions carry."""
        return f"rss:{self.name}"


class ApiConfig(StrictModel):
    listen: str = "127.0.0.1:8080"
    sources: list[ApiSource] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        _split_listen(value)
        return value

    def weak_tokens(self) -> list[tuple[str, str]]:
        """(field path, problem) of every set token that could be guessed or cannot be sent.
        Checked by `check-config` and `run`, not on every load: tests and tools use short
        ones. Never names the token."""
        rule = (
            f"use at least {MIN_TOKEN_LENGTH} random printable ASCII characters without "
            "spaces (it is sent in an HTTP header), e.g. from `openssl rand -hex 32`"
        )
        problems = []
        for i, source in enumerate(self.sources):
            token = source.token
            if not token:
                continue
            if not all(33 <= ord(c) <= 126 for c in token):
                problems.append((f"api.sources[{i}].token", f"not ASCII: {rule}"))
            elif len(token) < MIN_TOKEN_LENGTH:
                problems.append((f"api.sources[{i}].token", f"{len(token)} characters: {rule}"))
        return problems

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class MetricsConfig(StrictModel):
    """Where Prometheus reads /metrics. By default on an address of its own, off the API's
    port, so a reverse proxy that publishes the API cannot publish the metrics too. Empty
    `listen`: /metrics is on the API's port, and only with a token. A token, when set, is
    asked for wherever /metrics is served (Authorization: Bearer)."""

    listen: Annotated[str | None, BeforeValidator(lambda v: v or None)] = "127.0.0.1:9108"
    token: _Secret = ""

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str | None) -> str | None:
        if value is not None:
            _split_listen(value)
        return value

    @model_validator(mode="after")
    def _token_strength(self) -> Self:
        if self.token and len(self.token) < MIN_TOKEN_LENGTH:
            raise FieldProblems(
                [("token", f"use at least {MIN_TOKEN_LENGTH} characters (`openssl rand -hex 32`)")]
            )
        return self

    @property
    def host(self) -> str | None:
        return None if self.listen is None else _split_listen(self.listen)[0]

    @property
    def port(self) -> int | None:
        return None if self.listen is None else _split_listen(self.listen)[1]

    @property
    def on_api_port(self) -> bool:
        """Served beside the API: no address of its own, a token instead."""
        return self.listen is None and bool(self.token)
