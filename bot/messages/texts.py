"""Every user-facing string, per locale: short messages from `messages.yaml` and file
templates (`*.html.j2`, `*.txt.j2`) from `templates_dir/<locale>/`.

Administrators edit these files, so rendering is sandboxed, and strict: a missing variable is
an error, never a silent blank in front of a citizen. `.t()` returns plain text; HTML
templates escape whatever they are given, so a mention's `<script>` stays text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from bot.messages.views import MenuOption
from bot.model import (
    Action,
    ApproverRole,
    AttachmentKind,
    AuthorLabel,
    CaseState,
    DeptRole,
    DraftKind,
    DraftStatus,
    EventKind,
    GlobalRole,
    IgnoreReason,
    Outcome,
    Priority,
)
from bot.settings.fields import LOCALES
from bot.settings.yamlfile import YamlError, read_yaml
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "DEFAULT_TEMPLATES_DIR",
    "ERROR_CODES",
    "MESSAGES_FILE",
    "Texts",
    "TextsError",
    "check_templates",
    "plural_form",
    "required_keys",
    "spell_duration",
    "texts_for",
]

MESSAGES_FILE = "messages.yaml"
TEMPLATE_SUFFIX = ".j2"
HTML_SUFFIX = ".html.j2"  # autoescaped; `.txt.j2` is not
DEFAULT_TEMPLATES_DIR = PLAYBOOKS_DIR / "templates"

# DomainError codes from bot.cases.lifecycle, plus the ones services raise; each has `error.<code>`.
ERROR_CODES = (
    "invalid_state",
    "no_right",
    "self_review",
    "wrong_tier",
    "reviewed_twice",
    "not_assignee",
    "missing_input",
    "invalid_input",
    "stale",
    "stale_draft",
    "wrong_chat",
    "unknown_case",
    "not_publishable",
    # bot/crisis/service.py: a crisis card's checklist
    "unknown_crisis",
    "checklist_done_already",
    "checklist_not_done",
    "checklist_not_yours",
    # bot/cases/split.py: /split N
    "unknown_mention",
    "split_first",
)


def required_keys() -> frozenset[str]:
    """Keys every locale's messages.yaml must have: one per domain value the UI shows."""
    keys = {f"action.{a.value}" for a in Action}
    keys |= {f"event.{a.value}" for a in Action}  # history lines, past tense
    keys |= {f"event.{k.value}" for k in EventKind}
    keys |= {f"state.{s.value}" for s in CaseState}
    keys |= {f"priority.{p.value}" for p in Priority}
    keys |= {f"ignore_reason.{r.value}" for r in IgnoreReason}
    keys |= {f"outcome.{o.value}" for o in Outcome}
    keys |= {f"author_label.{label.value}" for label in AuthorLabel}
    keys |= {f"draft_status.{s.value}" for s in DraftStatus}
    keys |= {f"draft_kind.{k.value}" for k in DraftKind}
    keys |= {f"role.{r.value}" for r in (*DeptRole, *GlobalRole)}
    keys |= {f"tier.{r.value}" for r in ApproverRole}
    keys |= {f"error.{code}" for code in ERROR_CODES}
    keys |= {f"attachment_kind.{k.value}" for k in AttachmentKind}
    keys |= {"startup.no_transport", "startup.ready"}
    return frozenset(keys)


# A checklist button shows the start of its item; the crisis card above has the whole text.
CHECKLIST_LABEL = 40


# Duration words per locale: (one, few, many) as Russian counts them (1 час, 2 часа, 5 часов);
# English uses the first two. Minutes and seconds are in the accusative, as Russian says a span
# of time ("за 1 минуту", "продержится 1 минуту", "ждёт 1 минуту").
_UNITS: dict[str, tuple[tuple[int, tuple[str, str, str]], ...]] = {
    "ru": (
        (86_400, ("день", "дня", "дней")),
        (3_600, ("час", "часа", "часов")),
        (60, ("минуту", "минуты", "минут")),
        (1, ("секунду", "секунды", "секунд")),
    ),
    "en": (
        (86_400, ("day", "days", "days")),
        (3_600, ("hour", "hours", "hours")),
        (60, ("minute", "minutes", "minutes")),
        (1, ("second", "seconds", "seconds")),
    ),
}


def plural_form(count: int, locale: str) -> int:
    """Which of (one, few, many) a count takes: 1, 21 → one; 2–4, 22 → few (ru); else many."""
    count = abs(count)
    if locale != "ru":
        return 0 if count == 1 else 2
    if count % 10 == 1 and count % 100 != 11:
        return 0
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return 1
    return 2


_SIZE_UNITS = {"ru": ("Б", "КБ", "МБ", "ГБ"), "en": ("B", "KB", "MB", "GB")}


def spell_size(size: int, locale: str) -> str:
    """A file size as people read it: "900 Б", "120 КБ", "1,2 МБ" (ru), "1.2 MB" (en)."""
    units = _SIZE_UNITS.get(locale, _SIZE_UNITS["en"])
    value = float(max(size, 0))
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    number = f"{value:.0f}" if unit < 2 or value >= 100 else f"{value:.1f}"
    if locale == "ru":
        number = number.replace(".", ",")
    return f"{number} {units[unit]}"


def spell_duration(value: timedelta | float, locale: str) -> str:
    """A span of time in words: "1 час 30 минут", "2 дня", "1 hour 30 minutes". The one place
    durations become text for people (config files keep "1h30m"). Seconds show only in spans
    under a minute; a number is seconds."""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    units = _UNITS.get(locale, _UNITS["en"])
    if seconds >= 60:
        seconds -= seconds % 60
    parts: list[str] = []
    for size, forms in units:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {forms[plural_form(amount, locale)]}")
    if not parts:
        return f"0 {units[2][1][2]}"
    return " ".join(parts)


class TextsError(Exception):
    """Templates that cannot be used; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(HTML_SUFFIX)


def _http_url(value: object) -> str | None:
    """The URL if it is a plain web link, else None: no javascript: or data: in an href."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _environment(locale_dir: Path, locale: str) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(locale_dir),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["http_url"] = _http_url
    env.filters["duration"] = _duration_filter(locale)
    env.filters["filesize"] = lambda size: spell_size(size, locale) if isinstance(size, int) else ""
    # {{ n|plural("упоминание", "упоминания", "упоминаний") }} -> "137 упоминаний"
    env.filters["plural"] = lambda count, one, few, many: (
        f"{count} {(one, few, many)[plural_form(int(count), locale)]}"
    )
    return env


def _duration_filter(locale: str) -> Callable[[object], object]:
    def duration(value: object) -> object:
        # Views queued before durations were numbers carry text ("1h"): shown as they are.
        if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
            return value
        return spell_duration(value, locale)

    return duration


def _flatten(
    node: Mapping[Any, Any], prefix: str, out: dict[str, str], problems: list[str], file: Path
) -> None:
    for key, value in node.items():
        if not isinstance(key, str) or not key.strip():
            # YAML reads unquoted yes/no/on/off as booleans.
            problems.append(f"{file}: {prefix}{key!r}: keys must be text (quote it)")
            continue
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, f"{full}.", out, problems, file)
        elif isinstance(value, str):
            if full in out:
                problems.append(f"{file}: {full}: defined twice")
            out[full] = value
        else:
            problems.append(f"{file}: {full}: expected text, got {type(value).__name__}")


def _read_messages(file: Path) -> tuple[dict[str, str], list[str]]:
    """messages.yaml flattened to dotted keys, and problems."""
    try:
        data = read_yaml(file)
    except FileNotFoundError:
        return {}, [f"{file}: file is missing"]
    except YamlError as exc:
        return {}, [str(exc)]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{file}: {exc}"]
    if not isinstance(data, Mapping):
        return {}, [f"{file}: expected a mapping of message keys"]
    messages: dict[str, str] = {}
    problems: list[str] = []
    _flatten(data, "", messages, problems, file)
    return messages, problems


class Texts:
    """Messages and templates of one locale. Build it once (see texts_for) and share it."""

    def __init__(self, templates_dir: Path, locale: str) -> None:
        self.templates_dir = Path(templates_dir)
        self.locale = locale
        locale_dir = self.templates_dir / locale
        if not locale_dir.is_dir():
            raise TextsError([f"{locale_dir}: no templates for locale {locale!r}"])
        self._env = _environment(locale_dir, locale)
        # Templates may name other messages: {{ t('state.' ~ case.state) }}.
        self._env.globals["t"] = self.t
        self._env.globals["t_or"] = self.t_or
        file = locale_dir / MESSAGES_FILE
        sources, problems = _read_messages(file)
        self._messages: dict[str, Template] = {}
        for key, source in sources.items():
            try:
                self._messages[key] = self._env.from_string(source)
            except TemplateSyntaxError as exc:
                problems.append(f"{file}: {key}: template syntax error: {exc.message}")
        if problems:
            raise TextsError(problems)

    def __repr__(self) -> str:
        return f"Texts({str(self.templates_dir)!r}, {self.locale!r})"

    def keys(self) -> frozenset[str]:
        return frozenset(self._messages)

    def has(self, key: str) -> bool:
        return key in self._messages

    def checklist_button(self, number: int, label: Mapping[str, str], done: bool) -> str:
        """A crisis checklist item as its button says it, "⬜ 3. …" or "✅ 3. …" (a press
        unticks it): the item in this locale, cut to CHECKLIST_LABEL (the card has it whole)."""
        item = label.get(self.locale) or next(iter(label.values()), "")
        short = item if len(item) <= CHECKLIST_LABEL else item[: CHECKLIST_LABEL - 1] + "…"
        key = "ui.checklist_untick" if done else "ui.checklist_tick"
        return self.t(key, number=number, step=short)

    def option_label(self, option: MenuOption) -> str:
        """A submenu choice as its button says it: its own label, or a message with params."""
        label = option.get("label")
        if label:
            return label
        return self.t(option.get("label_key") or "", **option.get("label_params", {}))

    def duration(self, value: timedelta | float) -> str:
        """A span of time in this locale's words (spell_duration); templates say
        `{{ seconds|duration }}`."""
        return spell_duration(value, self.locale)

    def t(self, key: str, /, **params: Any) -> str:
        """One short message as plain text. Unknown key: KeyError; missing param: an
        UndefinedError from StrictUndefined."""
        try:
            template = self._messages[key]
        except KeyError:
            raise KeyError(f"no message {key!r} in locale {self.locale!r}") from None
        return template.render(**params).strip()

    def notice(self, key: str, params: Mapping[str, Any]) -> str:
        """A notice or prompt view's text; one about a drill case (`drill` among its params,
        bot/messages/outbox.py Destination.about) starts with the DRILL mark."""
        text = self.t(key, **params)
        return f"{self.t('drill.mark')} {text}" if params.get("drill") is True else text

    def public_reply(self, text: str, corrects: bool = False) -> str:
        """A public reply's plain text; a correction posted as a new reply says so first."""
        return self.t("public.correction", text=text) if corrects else text

    def t_or(self, key: str, default: str, /, **params: Any) -> str:
        """Like t(), but `default` for a key that is not there: for open-ended values such as
        event kinds added by jobs."""
        return self.t(key, **params) if key in self._messages else default

    def render(self, name: str, /, **context: Any) -> str:
        """A file template, e.g. 'card.html.j2'. HTML templates escape their inputs."""
        return self._env.get_template(name).render(**context).strip()


@lru_cache(maxsize=16)
def texts_for(templates_dir: Path, locale: str) -> Texts:
    """The shared Texts of a directory and locale; files are read once per process."""
    return Texts(Path(templates_dir), locale)


def _template_names(locale_dir: Path) -> Iterator[str]:
    for file in sorted(locale_dir.rglob(f"*{TEMPLATE_SUFFIX}")):
        yield file.relative_to(locale_dir).as_posix()


def check_templates(templates_dir: Path) -> list[str]:
    """Every problem with a templates directory: syntax, missing required keys, and
    differences between locales in keys, files and the variables a message uses."""
    templates_dir = Path(templates_dir)
    if not templates_dir.is_dir():
        return [f"{templates_dir}: templates directory not found"]
    problems: list[str] = []
    locales = sorted(
        d.name for d in templates_dir.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))
    )
    problems.extend(
        f"{templates_dir / locale}: locale {locale!r} is missing"
        for locale in LOCALES
        if locale not in locales
    )
    keys: dict[str, set[str]] = {}
    files: dict[str, set[str]] = {}
    variables: dict[str, dict[str, frozenset[str]]] = {}
    for locale in locales:
        locale_dir = templates_dir / locale
        env = _environment(locale_dir, locale)
        known_globals = {*env.globals, "t", "t_or"}
        messages_file = locale_dir / MESSAGES_FILE
        messages, read_problems = _read_messages(messages_file)
        problems.extend(read_problems)
        keys[locale] = set(messages)
        variables[locale] = {}
        for key, source in sorted(messages.items()):
            try:
                ast = env.parse(source)
            except TemplateSyntaxError as exc:
                problems.append(f"{messages_file}: {key}: template syntax error: {exc.message}")
                continue
            variables[locale][key] = frozenset(meta.find_undeclared_variables(ast) - known_globals)
        if messages or not read_problems:
            problems.extend(
                f"{messages_file}: missing required key {key!r}"
                for key in sorted(required_keys() - set(messages))
            )
        files[locale] = set()
        for name in _template_names(locale_dir):
            files[locale].add(name)
            try:
                env.get_template(name)
            except TemplateSyntaxError as exc:
                problems.append(f"{locale_dir / name}: line {exc.lineno}: {exc.message}")
    problems.extend(_compare_locales(templates_dir, keys, files, variables))
    return problems


def _compare_locales(
    templates_dir: Path,
    keys: dict[str, set[str]],
    files: dict[str, set[str]],
    variables: dict[str, dict[str, frozenset[str]]],
) -> Iterator[str]:
    all_keys = set().union(*keys.values()) if keys else set()
    all_files = set().union(*files.values()) if files else set()
    for locale in keys:
        others = [other for other in keys if other != locale]
        for key in sorted(all_keys - keys[locale]):
            present = ", ".join(o for o in others if key in keys[o])
            yield f"{templates_dir / locale / MESSAGES_FILE}: missing key {key!r} (in {present})"
        for name in sorted(all_files - files[locale]):
            present = ", ".join(o for o in others if name in files[o])
            yield f"{templates_dir / locale}: missing template {name!r} (in {present})"
    # A parameter only one locale uses is almost always a typo that fails at render time.
    for key in sorted(all_keys):
        used = {loc: variables[loc][key] for loc in variables if key in variables[loc]}
        if len(set(used.values())) > 1:
            detail = "; ".join(f"{loc}: {', '.join(sorted(v)) or '-'}" for loc, v in used.items())
            yield f"{templates_dir}: {key}: locales use different parameters ({detail})"
