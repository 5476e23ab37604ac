"""The `otklik` command line."""

from __future__ import annotations

import asyncio
import base64
import functools
import os
from collections.abc import Coroutine
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot import __version__
from bot.intake.mapping import check_mapping
from bot.intake.router import RouterError, load_router
from bot.intake.sentiment.lexicon import LexiconError, lexicon_dir, load_lexicon
from bot.messages.texts import check_templates
from bot.ports import SentimentCorrection
from bot.settings.config import Config, ConfigError, load_config
from bot.settings.errors import unknown_name
from bot.settings.fields import format_duration
from bot.settings.playbook import Playbook, PlaybookError, load_playbook
from bot.settings.production import CalendarDay, DayKind, year_listing
from bot.settings.sla_rules import WorkCalendar
from store.audit import ChainReport
from store.db import Database

if TYPE_CHECKING:
    from bot.drills.service import DrillService
    from bot.intake.sentiment.analyser import SentimentClassifier
    from bot.intake.sentiment.training import Example

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Otklik: negative mentions → cases."
)
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
authors_app = typer.Typer(no_args_is_help=True, help="Author cards.")
app.add_typer(authors_app, name="authors")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: check and export it.")
app.add_typer(audit_app, name="audit")
model_app = typer.Typer(no_args_is_help=True, help="The learned models: sentiment and router.")
app.add_typer(model_app, name="model")
keys_app = typer.Typer(no_args_is_help=True, help="Keys that encrypt personal data at rest.")
app.add_typer(keys_app, name="keys")
drill_app = typer.Typer(no_args_is_help=True, help="Crisis drills: start, stop, report.")
app.add_typer(drill_app, name="drill")

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Path to config.yaml", show_default=True)
]
FromOption = Annotated[
    str, typer.Option("--from", help="First day, YYYY-MM-DD, in the organisation's time zone")
]
ToOption = Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD, included")]


class SetupError(Exception):
    """Config, playbook or templates are not usable; the message lists every problem."""


def load_all(config_path: Path) -> tuple[Config, Playbook]:
    """Load and cross-check everything `run` needs. Raises SetupError naming each problem,
    every file's at once."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise SetupError(str(error)) from error
    problems: list[str] = []
    playbook: Playbook | None = None
    try:
        playbook = load_playbook(config.playbooks.path)
    except PlaybookError as error:
        problems.append(str(error))
    if playbook is not None:
        unknown = playbook.check_departments(set(config.department_ids))
        unknown += playbook.check_locale(config.locale)
        unknown += playbook.check_codes(code for feed in config.feeds for code in feed.codes)
        unknown += playbook.check_approvers(r.value for m in config.staff for r in m.global_roles)
        problems += [str(PlaybookError(unknown))] if unknown else []
        problems += _sentiment_model_problems(playbook)
    problems += _template_problems(config.playbooks.templates)
    try:
        load_lexicon(lexicon_dir(config))
    except LexiconError as error:
        problems.append(str(error))
    try:
        load_router(config)
    except RouterError as error:
        problems.append(str(error))
    for name, mapping in config.mappings.items():
        problems += [
            f"{config_path}: mappings.{name}.{path}: {message}"
            for path, message in check_mapping(mapping)
        ]
    if problems or playbook is None:
        raise SetupError("\n".join(problems))
    return config, playbook


def _template_problems(directory: Path) -> list[str]:
    """check_templates, once per unchanged directory: compiling every message takes a
    quarter of a second, and a process may check settings many times (the fuzz test does)."""
    try:
        stamp = tuple(
            sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in directory.rglob("*"))
        )
    except OSError:
        return check_templates(directory)
    return list(_checked_templates(directory, stamp))


@functools.lru_cache(maxsize=4)
def _checked_templates(directory: Path, stamp: tuple[tuple[str, int, int], ...]) -> tuple[str, ...]:
    return tuple(check_templates(directory))


def _sentiment_model_problems(playbook: Playbook) -> list[str]:
    """The playbook's sentiment model must load, or `run` would fail building intake."""
    from bot.intake.sentiment.model import SentimentModel, model_file

    path = model_file(playbook)
    if path is None:
        return []
    try:
        SentimentModel.load(path)
    except Exception as error:
        # A damaged .npz fails in numpy, zipfile or zlib in many ways: all mean "replace it".
        reason = f"{error}"[:120] or type(error).__name__
        return [f"{path}: damaged or not a sentiment model ({reason}); copy it again or retrain"]
    return []


def _load_or_exit(config_path: Path, *, serving: bool = False) -> tuple[Config, Playbook]:
    """`serving`: the config will answer the network (`run`, and `check-config` for it), so
    API tokens must be hard to guess too."""
    try:
        config, playbook = load_all(config_path)
        weak = config.api.weak_tokens() if serving else []
        if weak:
            raise SetupError("\n".join(f"{config_path}: {path}: {msg}" for path, msg in weak))
    except SetupError as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None
    return config, playbook


@app.command("calendar")
def calendar_(
    year: Annotated[int, typer.Option("--year", min=1991, max=2100, help="The year to list")],
    department: Annotated[
        str | None, typer.Option("--department", help="Only the calendars its SLA policies use")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Non-working, working weekend and shortened days of a year, per working calendar."""
    try:
        cfg = load_config(config)
        playbook = load_playbook(cfg.playbooks.path)
    except (ConfigError, PlaybookError) as error:
        err.print(f"[bold red]Configuration is not valid[/]\n{error}", highlight=False)
        raise typer.Exit(code=2) from None
    if department is not None and department not in cfg.department_ids:
        err.print(unknown_name("department", department, cfg.department_ids), highlight=False)
        raise typer.Exit(code=2)
    language = "ru" if cfg.locale == "ru" else "en_US"
    listing = [
        (playbook.calendar(name), year_listing(playbook.calendar(name), year, language))
        for name in playbook.working_calendars(department)
    ]
    if as_json:
        out.print_json(data={"year": year, "calendars": [_calendar_json(*c) for c in listing]})
        return
    for calendar, days in listing:
        known = "" if calendar.covers(year) else " — incomplete: no official transfers yet"
        country = f", {calendar.country}" if calendar.country else ""
        table = Table(title=f"{calendar.name}{country}, {year}{known}", title_justify="left")
        for column in ("date", "day", "kind", "why", "hours"):
            table.add_column(column)
        for day in days:
            table.add_row(
                day.day.isoformat(),
                day.day.strftime("%a"),
                day.kind.value.replace("_", "-"),
                day.why,
                _hours_text(day),
            )
        out.print(table)
    if not listing:
        out.print("No working calendar: every policy counts every minute (24x7).")


def _hours_text(day: CalendarDay) -> str:
    text = ", ".join(str(r) for r in day.hours)
    return f"{text} ({format_duration(day.shorter_by)} shorter)" if day.shorter_by else text


def _calendar_json(calendar: WorkCalendar, days: list[CalendarDay]) -> dict[str, object]:
    def entry(day: CalendarDay) -> dict[str, object]:
        item: dict[str, object] = {
            "date": day.day.isoformat(),
            "weekday": day.day.strftime("%a").lower(),
            "why": day.why,
        }
        if day.hours:
            item["hours"] = [str(r) for r in day.hours]
        if day.shorter_by:
            item["shorter_by"] = format_duration(day.shorter_by)
        return item

    year = days[0].day.year if days else None
    return {
        "name": calendar.name,
        "country": calendar.country,
        "known": calendar.covers(year) if year is not None else False,
        **{
            key: [entry(d) for d in days if d.kind is kind]
            for key, kind in (
                ("non_working", DayKind.NON_WORKING),
                ("working_weekend_days", DayKind.WORKING),
                ("short_days", DayKind.SHORT),
            )
        },
    }


def _print_problems(problems: str) -> None:
    """One problem a line, as written: no markup (a value may hold `[/]`), no wrapping (a
    line is what grep and journald show)."""
    err.print("[bold red]Configuration is not valid[/]")
    err.print(problems, markup=False, highlight=False, soft_wrap=True)


def _email_line(cfg: Config) -> str:
    mail = cfg.email
    assert mail is not None
    if not mail.enabled:
        return "E-mail: off"
    return (
        f"E-mail: on; reads {escape(mail.mailbox)} at {escape(mail.imap_host)}:{mail.imap_port}"
        f" ({mail.imap_tls}), answers from {escape(mail.from_address)} through "
        f"{escape(mail.smtp_host)}:{mail.smtp_port} ({mail.smtp_tls}); letters over "
        f"{mail.max_letter_mb:g} MB are not read"
    )


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"otklik {__version__}")


@app.command("check-config")
def check_config(config: ConfigOption = Path("config.yaml")) -> None:
    """Validate the config, the playbook and the templates, and summarise them."""
    cfg, playbook = _load_or_exit(config, serving=True)
    out.print(
        f"[bold green]OK[/] {escape(str(config))}: locale {cfg.locale}, timezone {cfg.timezone}"
    )
    out.print(
        f"Telegram: {'on' if cfg.telegram_enabled else 'off'}; "
        f"Matrix: {'on' if cfg.matrix_enabled else 'off'}; "
        f"VK: {_vk_summary(cfg)}; "
        f"API: {cfg.api.listen}, {len(cfg.api.sources)} source(s); database: "
        f"{cfg.database.url.split('://')[0]}"
    )
    if cfg.email is not None:
        out.print(_email_line(cfg), highlight=False)
    out.print(_sentiment_model_line(cfg, playbook), highlight=False)
    out.print(_encryption_line(cfg), highlight=False)

    departments = Table(title="Departments")
    for column in ("id", "name", "telegram chat / topic", "matrix room", "staff"):
        departments.add_column(column)
    for dept in cfg.departments:
        telegram = (
            f"{dept.telegram.chat_id}"
            + (f" / {dept.telegram.topic_id}" if dept.telegram.topic_id else "")
            if dept.telegram
            else "—"
        )
        members = sum(1 for s in cfg.staff if s.roles.get(dept.id))
        marker = " (coordination)" if dept.id == cfg.coordination_department else ""
        departments.add_row(
            dept.id + marker,
            dept.name,
            telegram,
            dept.matrix.room_id if dept.matrix else "—",
            str(members),
        )
    out.print(departments)

    staff = Table(title="Staff")
    for column in ("id", "name", "telegram", "matrix", "roles"):
        staff.add_column(column)
    for member in cfg.staff:
        roles = [f"{d}: {', '.join(r.value for r in rs)}" for d, rs in member.roles.items()]
        roles += [r.value for r in member.global_roles]
        staff.add_row(
            member.id,
            member.name,
            str(member.telegram_id or "—"),
            member.matrix_id or "—",
            "; ".join(roles),
        )
    out.print(staff)

    summary = Table(title=f"Playbook {cfg.playbooks.path}")
    summary.add_column("part")
    summary.add_column("count", justify="right")
    for part, count in playbook.summary().items():
        summary.add_row(part, str(count))
    out.print(summary)


def _vk_summary(cfg: Config) -> str:
    """VK on or off; on: the community and where VK must send its Callback API events."""
    if cfg.vk is None or not cfg.vk.enabled:
        return "off"
    return f"on, community {cfg.vk.group_id}, Callback API at {cfg.vk.callback_path}"


def _encryption_line(cfg: Config) -> str:
    """Where the keys for personal data come from; exits with code 2 if `run` could not
    start with them."""
    from store.crypto import KeyringError, describe_keys

    try:
        where, production = describe_keys(cfg.database.url, os.environ)
    except KeyringError as error:
        err.print(f"[bold red]Encryption keys are not usable[/]\n{error}", highlight=False)
        raise typer.Exit(code=2) from None
    mark = "" if production else "[bold yellow]WARNING[/] "
    return f"{mark}Personal data encrypted at rest (AES-256-GCM); keys {where}"


def _sentiment_model_line(cfg: Config, playbook: Playbook) -> str:
    from bot.intake.sentiment.model import load_organisation_model, model_file

    when = (
        f"retrained at cron {cfg.model.retrain_cron!r}"
        if cfg.model.retrain_cron
        else "retrained only by `otklik model retrain`"
    )
    own = load_organisation_model(cfg.model.path)
    if own is not None:
        return escape(f"Sentiment model: the organisation's own, {cfg.model.path}; {when}")
    shipped = model_file(playbook)
    line = escape(f"Sentiment model: {shipped or 'none, the lexicon alone'}; {when}")
    if cfg.model.path.is_file():
        unread = escape(str(cfg.model.path))
        return f"[bold yellow]WARNING[/] {unread} cannot be read: not used. {line}"
    return line


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = Path("config.yaml")) -> None:
    """Apply database migrations (also done at every start)."""
    try:
        cfg = load_config(config)
    except ConfigError as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None

    async def upgrade() -> str | None:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            return await database.current_revision()
        finally:
            await database.dispose()

    revision = asyncio.run(upgrade())
    out.print(f"database at revision {revision}")


@app.command("import")
def import_mentions(
    file: Annotated[Path, typer.Argument(help="A .csv or .xlsx file; the first row has titles")],
    source: Annotated[
        str, typer.Option("--source", help="Source name stored with every mention, e.g. vk")
    ],
    mapping: Annotated[
        str | None, typer.Option("--mapping", help="A mapping from the config's `mappings`")
    ] = None,
    open_cases: Annotated[
        bool,
        typer.Option("--open-cases", help="Open cases for negative and urgent mentions"),
    ] = False,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Import mentions from a spreadsheet: idempotent, bad rows listed and skipped."""
    from handlers.ingest.importer import run_import  # imported late: the other commands stay light

    cfg, playbook = _load_or_exit(config)
    code = run_import(
        cfg, playbook, file, source=source, mapping=mapping, open_cases=open_cases, out=out, err=err
    )
    raise typer.Exit(code=code)


@model_app.command("train")
def model_train(
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="JSON lines with text and label (negative|not_negative)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="The model file (.npz) to write")
    ] = None,
    lexicon: Annotated[
        Path | None, typer.Option("--lexicon", help="Lexicon directory (default: the shipped)")
    ] = None,
    tune: Annotated[
        bool,
        typer.Option("--tune", help="Choose C and the lexicon signals by cross-validation"),
    ] = False,
) -> None:
    """Train the sentiment model (deterministic: fixed seeds) and print its band."""
    from bot.intake.sentiment.training import Params, cross_validate, split_method, train

    corpus, output, examples, classifier = _sentiment_corpus(corpus, output, lexicon)
    params = Params()
    report = None
    if tune:
        report = cross_validate(examples, classifier)
        table = Table(title=f"Held out: {report.method}")
        for name in ("C", "lexicon signals", "log loss", "AUC"):
            table.add_column(name, justify="right")
        for candidate in report.candidates:
            chosen = (candidate["c"], tuple(candidate["signals"])) == (
                report.params.c,
                report.params.signals,
            )
            table.add_row(
                f"{candidate['c']:g}" + (" ←" if chosen else ""),
                ", ".join(candidate["signals"]) or "none",
                f"{candidate['log_loss']:.4f}",
                f"{candidate['auc']:.4f}",
            )
        out.print(table)
        params = report.params
        table = Table(
            title=f"At the band {report.band.negative_from}/{report.band.uncertain_from} "
            f"(C={params.c:g})"
        )
        for name in ("held out", "precision", "recall", "reach", "triage share"):
            table.add_column(name, justify="right")
        rows = [
            *((f"author batch {batch}", found) for batch, found in report.by_batch.items()),
            ("pooled", report.at_band),
        ]
        if report.same_author:
            rows.append(("stratified 5-fold (same authors)", report.same_author))
        for name, found in rows:
            table.add_row(
                name,
                *(f"{found[k]:.3f}" for k in ("precision", "recall", "reach", "triage_share")),
            )
        out.print(table)
    band = report.band if report is not None else None  # the same choice, not made twice
    model = train(examples, classifier, params, band, note={"corpus": corpus.name})
    model.save(output)
    out.print(
        f"{output}: {len(examples)} examples, C={params.c:g}, signals "
        f"{', '.join(params.signals)}; band from {split_method(examples)}: "
        f"negative_from {model.band.negative_from}, uncertain_from {model.band.uncertain_from} "
        "(routing.yaml, triage:)",
        highlight=False,
    )


def _sentiment_corpus(
    corpus: Path | None, output: Path | None, lexicon: Path | None
) -> tuple[Path, Path, list[Example], SentimentClassifier]:
    from bot.intake.lemmas import Lemmatiser
    from bot.intake.sentiment.analyser import SentimentClassifier
    from bot.intake.sentiment.lexicon import DEFAULT_LEXICON_DIR
    from bot.intake.sentiment.model import DEFAULT_MODEL_FILE
    from bot.intake.sentiment.training import DEFAULT_CORPUS, load_corpus

    corpus = corpus or DEFAULT_CORPUS
    try:
        examples = load_corpus(corpus)
        classifier = SentimentClassifier(load_lexicon(lexicon or DEFAULT_LEXICON_DIR), Lemmatiser())
    except (OSError, ValueError, LexiconError) as e:
        err.print(f"[red]{e}[/red]")
        raise typer.Exit(code=2) from None
    return corpus, output or DEFAULT_MODEL_FILE, examples, classifier


@model_app.command("simulate-feedback")
def model_simulate_feedback(
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="JSON lines with text, label and batch (two or more)"),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Its C and signals (default: the shipped)")
    ] = None,
) -> None:
    """Simulate staff corrections on each held-out author batch of the corpus and retrain as
    production does; print every correction weight and band policy, and the one chosen."""
    from bot.intake.sentiment.model import SentimentModel
    from bot.intake.sentiment.simulation import choose_policy, simulate_feedback
    from bot.intake.sentiment.training import Params

    corpus, model, examples, classifier = _sentiment_corpus(corpus, model, None)
    shipped = SentimentModel.load(model)
    c = shipped.metadata.get("c")
    params = Params(float(c) if isinstance(c, int | float) else Params().c, shipped.signals)
    try:
        results = simulate_feedback(examples, classifier, params)
    except ValueError as e:
        err.print(f"[red]{e}[/red]")
        raise typer.Exit(code=2) from None
    chosen = choose_policy(results)
    table = Table(title=f"Staff corrections of a held-out author's live traffic (C={params.c:g})")
    for name in ("weight", "band", "precision", "recall", "reach", "triage share", "worse Δ"):
        table.add_column(name, justify="right")
    for result in results:
        before, after = result.before.figures(), result.after.figures()
        mark = " ←" if result is chosen else ""
        table.add_row(
            f"{result.policy.weight:g}{mark}",
            "fitted again" if result.policy.refit_band else "kept",
            *(
                f"{before[k]:.3f} → {after[k]:.3f}"
                for k in ("precision", "recall", "reach", "triage_share")
            ),
            f"{result.gain():+.4f}",
        )
    out.print(table)
    for batch, found in chosen.by_batch.items():
        out.print(f"author batch {batch} held out: {found}", highlight=False)


@model_app.command("retrain")
def model_retrain(config: ConfigOption = Path("config.yaml")) -> None:
    """Retrain the organisation's model from staff corrections; keep it only if it wins."""
    from bot.intake.sentiment.learning import (
        SINCE_EVER,
        RetrainDecision,
        RetrainRequest,
        retrain_organisation,
    )
    from bot.intake.sentiment.model import model_file, playbook_band
    from bot.intake.sentiment.training import DEFAULT_CORPUS

    cfg, playbook = _load_or_exit(config)

    async def corrections() -> list[SentimentCorrection]:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            async with database.reader() as uow:
                return await uow.mentions.corrections(SINCE_EVER)
        finally:
            await database.dispose()

    found = asyncio.run(corrections())
    result = retrain_organisation(
        RetrainRequest(
            corrections=tuple(found),
            corpus=DEFAULT_CORPUS,
            shipped_model=model_file(playbook),
            organisation_model=cfg.model.path,
            lexicon=lexicon_dir(cfg),
            band=playbook_band(playbook),
        )
    )
    out.print(result.summary(), highlight=False)
    if result.decision is RetrainDecision.ADOPTED:
        out.print("The running bot switches to it at its next scheduled retraining or restart.")


@authors_app.command("merge")
def authors_merge(
    keep: Annotated[int, typer.Argument(help="The author card that stays")],
    gone: Annotated[int, typer.Argument(help="The author card merged into it")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Merge two author cards of one person (identities, mentions and counts)."""
    from bot.cases.service import CaseService
    from bot.clock import SystemClock
    from bot.model import GlobalRole
    from bot.staff.directory import Directory
    from bot.staff.rights import Actor

    cfg, playbook = _load_or_exit(config)
    # Whoever runs the command line administers the installation.
    admin = Actor("cli", "otklik authors merge", global_roles=frozenset({GlobalRole.ADMIN}))

    async def merge() -> str | None:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            cases = CaseService(
                database.uow,
                SystemClock(),
                Directory(cfg),
                cfg.tz,
                coordination=cfg.coordination_department,
                policy=playbook.routing,
            )
            error = await cases.merge_authors(keep, gone, admin)
            return None if error is None else f"{error.code}: {error.params}"
        finally:
            await database.dispose()

    problem = asyncio.run(merge())
    if problem is not None:
        err.print(f"cannot merge {gone} into {keep}: {problem}")
        raise typer.Exit(code=1)
    out.print(f"author {gone} merged into {keep}")


@authors_app.command("forget")
def authors_forget(
    author_id: Annotated[int, typer.Argument(help="The author card whose person is forgotten")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Erase one author's personal data everywhere (cannot be undone; audited; idempotent)."""
    from bot.cases.erasure import Erasure, Forgotten
    from bot.cases.service import CaseService
    from bot.clock import SystemClock
    from bot.model import GlobalRole
    from bot.staff.directory import Directory
    from bot.staff.rights import Actor

    cfg, playbook = _load_or_exit(config)
    # Whoever runs the command line administers the installation.
    admin = Actor("cli", "otklik authors forget", global_roles=frozenset({GlobalRole.ADMIN}))

    async def forget() -> Forgotten | str | None:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            clock = SystemClock()
            cases = CaseService(
                database.uow,
                clock,
                Directory(cfg),
                cfg.tz,
                coordination=cfg.coordination_department,
                policy=playbook.routing,
            )
            result = await Erasure(database.uow, clock, cases).forget(author_id, admin)
            if result is None or isinstance(result, Forgotten):
                return result
            return f"{result.code}: {result.params}"
        finally:
            await database.dispose()

    result = asyncio.run(forget())
    if not isinstance(result, Forgotten):
        err.print(f"cannot forget author {author_id}: {result or 'no such author'}")
        raise typer.Exit(code=1)
    if result.already:
        out.print(
            f"author {author_id} was forgotten already (event {result.event_id}); nothing to do"
        )
        return
    erased = ", ".join(f"{name} {count}" for name, count in result.counts.as_payload().items())
    out.print(f"author {author_id} forgotten (event {result.event_id}): {erased}", highlight=False)


def _config_or_exit(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None


@audit_app.command("verify")
def audit_verify(config: ConfigOption = Path("config.yaml")) -> None:
    """Check the hash chain of every event; exit 1 naming the first event that breaks it."""
    cfg = _config_or_exit(config)

    async def verify() -> ChainReport:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            async with database.reader() as uow:
                return await uow.events.verify()
        finally:
            await database.dispose()

    found = asyncio.run(verify())
    if not found.ok:
        err.print(
            f"audit chain BROKEN at event {found.broken_at}: {found.reason} "
            f"({found.checked} event(s) before it verify)",
            highlight=False,
        )
        raise typer.Exit(code=1)
    out.print(f"audit chain OK: {found.checked} event(s), head {found.head}", highlight=False)


@audit_app.command("export")
def audit_export(
    date_from: FromOption,
    date_to: ToOption,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or xlsx")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (default audit-FROM-TO.EXT)")
    ] = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Export the events of a period with their chain fields (jsonl, csv or xlsx)."""
    from bot.reports.export import export_period
    from handlers.reports.audit import AuditFormat, write_audit

    first, last = _period(date_from, date_to)
    kind = _format_option(AuditFormat, fmt)
    cfg = _config_or_exit(config)
    path = output or Path(f"audit-{first}-{last}.{kind.value}")

    async def export() -> int:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            done = await write_audit(database, export_period(first, last, cfg.tz), kind, path)
            return done.events
        finally:
            await database.dispose()

    count = asyncio.run(export())
    out.print(f"{path}: {count} event(s)", highlight=False)


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[
        str, typer.Option("--id", help="The new data key's id, stored with each value")
    ] = "",
) -> None:
    """Print a new data key and index key as environment lines (nothing is stored)."""
    from store import crypto

    data = crypto.new_key_text()
    key_id = key_id or crypto.fingerprint(base64.b64decode(data))
    out.print(f"{crypto.DATA_KEY_ENV}={key_id}:{data}", highlight=False, soft_wrap=True)
    out.print(f"{crypto.INDEX_KEY_ENV}={crypto.new_key_text()}", highlight=False, soft_wrap=True)
    err.print(
        "Rotating? Put the new data key first and keep the old ones after it, keep "
        f"{crypto.INDEX_KEY_ENV} as it is, restart, then run `otklik keys rotate`.",
        highlight=False,
    )


@keys_app.command("rotate")
def keys_rotate(
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per transaction")] = 500,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Re-encrypt every stored value under the current data key (the first in
    OTKLIK_DATA_KEY), in committed batches; safe while the bot runs, and resumable."""
    from store.crypto import KeyringError
    from store.rotation import TableRotation, rotate_keys

    try:
        cfg = load_config(config)
    except ConfigError as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None

    def show(state: TableRotation) -> None:
        if not state.finished and state.rows % 10_000 >= batch:
            return  # a line per 10,000 rows and one when the table is done
        out.print(
            f"  {state.table}: {state.rows:,} rows read, {state.rewritten:,} values re-encrypted",
            highlight=False,
        )

    async def rotate() -> tuple[str | None, list[TableRotation]]:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            return database.keyring.current, await rotate_keys(database, batch, show)
        finally:
            await database.dispose()

    try:
        current, tables = asyncio.run(rotate())
    except KeyringError as error:
        err.print(f"cannot rotate: {error}", highlight=False)
        raise typer.Exit(code=1) from None
    rewritten = sum(t.rewritten for t in tables)
    meanwhile = sum(t.changed_meanwhile for t in tables)
    out.print(f"{rewritten:,} values re-encrypted under key {current}")
    if meanwhile:
        out.print(
            f"{meanwhile:,} values changed while they were read: run `otklik keys rotate` again "
            "until this line is gone (a process with an older key list may still be writing)."
        )
    else:
        out.print("Every value is under the current key: older keys may leave OTKLIK_DATA_KEY.")


_Format = TypeVar("_Format", bound=StrEnum)


def _period(date_from: str, date_to: str) -> tuple[date, date]:
    """--from and --to as dates, the first not after the last; exit 2 naming the bad one."""
    first, last = _report_date(date_from, "--from"), _report_date(date_to, "--to")
    if last < first:
        err.print(f"--to {last} is before --from {first}", highlight=False)
        raise typer.Exit(code=2)
    return first, last


def _format_option(formats: type[_Format], fmt: str) -> _Format:
    """--format as one of `formats`; exit 2 listing the choices."""
    try:
        return formats(fmt.lower())
    except ValueError:
        choices = ", ".join(f.value for f in formats)
        err.print(f"--format: expected one of {choices}, got {fmt!r}", highlight=False)
        raise typer.Exit(code=2) from None


def _report_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"{option}: expected a date like 2026-12-01, got {value!r}", highlight=False)
        raise typer.Exit(code=2) from None


@app.command()
def report(
    date_from: FromOption,
    date_to: ToOption,
    fmt: Annotated[str, typer.Option("--format", help="xlsx, html or md")] = "xlsx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (default report-FROM-TO.EXT)")
    ] = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Export the cases created in a period with their authors (xlsx, html or md)."""
    from bot.clock import SystemClock
    from bot.messages.texts import texts_for
    from handlers.reports.report import ReportFormat, write_report

    first, last = _period(date_from, date_to)
    kind = _format_option(ReportFormat, fmt)
    try:  # the report needs no playbook: only the database, departments and templates
        cfg = load_config(config)
    except ConfigError as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None
    path = output or Path(f"report-{first}-{last}.{kind.value}")
    names = {dept.id: dept.name for dept in cfg.departments}
    staff = {member.id: member.name for member in cfg.staff}
    code_parts = None
    try:  # codes by their titles when the playbook loads; by their ids when it does not
        playbook: Playbook | None = load_playbook(cfg.playbooks.path)
    except PlaybookError:
        playbook = None
    if playbook is not None:
        code_parts = functools.partial(playbook.code_parts, locale=cfg.locale)

    async def export() -> tuple[int, int]:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            texts = texts_for(cfg.playbooks.templates, cfg.locale)
            done = await write_report(
                database.reader,
                texts,
                names,
                cfg.tz,
                first,
                last,
                kind,
                path,
                SystemClock().now(),
                staff=staff,
                code_parts=code_parts,
            )
            return done.cases, done.authors
        finally:
            await database.dispose()

    cases, authors = asyncio.run(export())
    out.print(f"{path}: {cases} case(s), {authors} author(s)")


def _drills(cfg: Config, playbook: Playbook, database: Database) -> DrillService:
    """A drill service without intake: the running bot plays the timeline (its drill job
    reads the run this process writes); here drills only start, stop and report."""
    from bot.clock import SystemClock
    from bot.crisis.service import CrisisService
    from bot.drills.service import DrillService
    from bot.staff.directory import Directory

    transports = frozenset(
        name
        for name, part in (("telegram", cfg.telegram), ("matrix", cfg.matrix))
        if part is not None and part.enabled
    )
    clock = SystemClock()
    directory = Directory(cfg, transports, clock)
    # Stopping closes the drill's crisis card (the running bot's outbox worker delivers it).
    crises = CrisisService(
        database.uow, clock, directory, playbook, cfg.tz, cfg.organisation, locale=cfg.locale
    )
    return DrillService(database.uow, clock, playbook, directory, cfg.locale, cfg.tz, crises=crises)


@drill_app.command("start")
def drill_start(
    scenario: Annotated[str, typer.Argument(help="A scenario id: playbooks/…/drills/ID.yaml")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Start a drill. The running bot picks it up within seconds and plays its timeline."""
    from bot.drills.service import DrillRefusal

    cfg, playbook = _load_or_exit(config)

    async def start() -> str:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            started = await _drills(cfg, playbook, database).start(scenario, "cli")
        finally:
            await database.dispose()
        if started is DrillRefusal.UNKNOWN_SCENARIO:
            known = ", ".join(sorted(playbook.drills)) or "none"
            raise _CliProblem(f"no drill scenario {scenario!r}; scenarios: {known}")
        if isinstance(started, DrillRefusal):
            raise _CliProblem("a drill is already running: otklik drill stop first")
        return f"drill #{started.run.id} started: {scenario}, {started.mentions} mention(s)"

    out.print(_run_or_exit(start()), highlight=False)


@drill_app.command("stop")
def drill_stop(config: ConfigOption = Path("config.yaml")) -> None:
    """Stop the running drill; its report goes to the coordination chat (the outbox)."""
    from bot.drills.service import DrillRefusal

    cfg, playbook = _load_or_exit(config)

    async def stop() -> str:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            report = await _drills(cfg, playbook, database).stop("cli")
        finally:
            await database.dispose()
        if isinstance(report, DrillRefusal):
            raise _CliProblem("no drill is running")
        return (
            f"drill #{report.run.id} stopped: {report.overall.cases} case(s), "
            f"{report.overall.left_open} left open; the report is queued for the coordination chat"
        )

    out.print(_run_or_exit(stop()), highlight=False)


@drill_app.command("report")
def drill_report(
    run_id: Annotated[int, typer.Argument(help="The drill's number")],
    fmt: Annotated[str, typer.Option("--format", help="md, html or xlsx")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (default drill-N.EXT)")
    ] = None,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Export the report of a finished drill (md, html or xlsx)."""
    from bot.messages.texts import texts_for
    from handlers.reports.drill_export import DrillReportFormat, write_drill_report

    try:
        kind = DrillReportFormat(fmt.lower())
    except ValueError:
        choices = ", ".join(f.value for f in DrillReportFormat)
        err.print(f"--format: expected one of {choices}, got {fmt!r}", highlight=False)
        raise typer.Exit(code=2) from None
    cfg, playbook = _load_or_exit(config)
    path = output or Path(f"drill-{run_id}.{kind.value}")

    async def export() -> str:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            drills = _drills(cfg, playbook, database)
            report = await drills.report_of(run_id)
            if report is None:
                raise _CliProblem(f"no finished drill #{run_id}")
            context = drills.context(report)
        finally:
            await database.dispose()
        texts = texts_for(cfg.playbooks.templates, cfg.locale)
        write_drill_report(context, texts, kind, path)
        return f"{path}: drill #{run_id}, {report.overall.cases} case(s)"

    out.print(_run_or_exit(export()), highlight=False)


class _CliProblem(Exception):
    """A command that cannot do what was asked: its message is printed, the exit code is 1."""


def _run_or_exit(work: Coroutine[Any, Any, str]) -> str:
    try:
        return asyncio.run(work)
    except _CliProblem as problem:
        err.print(str(problem), highlight=False)
        raise typer.Exit(code=1) from None


_SHIPPED_CORPUS = Path("playbooks/default/corpus/triage_train.jsonl")
_SHIPPED_ROUTER = Path("playbooks/default/models/router.npz")


@model_app.command("train-router")
def train_router(
    corpus: Annotated[
        Path, typer.Option(help="Labelled mentions, JSON lines with text and department")
    ] = _SHIPPED_CORPUS,
    destination: Annotated[
        Path, typer.Option("--out", help="Where to write the model")
    ] = _SHIPPED_ROUTER,
    playbook_dir: Annotated[
        Path, typer.Option("--playbook", help="Its rules decide which mentions the router sees")
    ] = Path("playbooks/default"),
) -> None:
    """Train the department router; choose C, min_confidence and overrule_confidence by
    cross-validation."""
    # Imported late: scikit-learn is needed here only, never by the running bot.
    from bot.intake.lemmas import Lemmatiser
    from bot.intake.router_training import rules_of, save, train

    if not corpus.is_file():
        err.print(f"[bold red]No corpus at {corpus}[/]", highlight=False)
        raise typer.Exit(code=2)
    try:
        playbook = load_playbook(playbook_dir)
    except PlaybookError as error:
        err.print(f"[bold red]{error}[/]", highlight=False)
        raise typer.Exit(code=2) from None
    rules = rules_of(playbook, Lemmatiser().lemma)
    router, cv = train(corpus, rules, playbook.routing.default.department)
    save(router, destination)
    table = Table(title=f"Cross-validation on {corpus.name} ({router.metadata['examples']})")
    table.add_column("C")
    table.add_column("router accuracy, all mentions", justify="right")
    for c, accuracy in cv.accuracy_by_c.items():
        table.add_row(f"{c:g}" + (" ←" if c == cv.best_c else ""), f"{accuracy:.3f}")
    out.print(table)
    table = Table(title="Routing of negative mentions: rules first, then the router")
    table.add_column("min_confidence")
    table.add_column("accuracy", justify="right")
    for threshold, accuracy in cv.routing_by_threshold.items():
        mark = " ←" if threshold == cv.best_threshold else ""
        table.add_row(f"{threshold:.2f}{mark}", f"{accuracy:.3f}")
    out.print(table)
    languages = list(cv.routing_by_language)
    table = Table(
        title=f"… and a router this sure of another department overrules a rule "
        f"(min_confidence {cv.best_threshold:.2f})"
    )
    table.add_column("overrule_confidence")
    table.add_column("all", justify="right")
    for language in languages:
        table.add_column(language, justify="right")
    for overrule, accuracy in cv.routing_by_overrule.items():
        mark = " ←" if overrule == cv.best_overrule else ""
        name = "never" if overrule is None else f"{overrule:.2f}"
        table.add_row(
            name + mark,
            f"{accuracy:.3f}",
            *(f"{cv.routing_by_language[language][overrule]:.3f}" for language in languages),
        )
    out.print(table)
    chosen_overrule = "null" if cv.best_overrule is None else f"{cv.best_overrule:.2f}"
    out.print(
        f"negatives: rules alone {cv.rules_only:.3f}; rules claim {cv.rule_claimed:.0%}, "
        f"right on {cv.rule_accuracy:.3f} of those; the router alone {cv.router_only:.3f}\n"
        f"{destination} ({destination.stat().st_size // 1024} KiB): "
        f"departments {', '.join(router.departments)}; "
        f"set routing.yaml learned.min_confidence: {cv.best_threshold:.2f}, "
        f"learned.overrule_confidence: {chosen_overrule}",
        highlight=False,
    )


def _keys_note(url: str) -> str:
    """Where the keys of the database's personal data are: they are not in any backup."""
    from store.crypto import DATA_KEY_ENV, INDEX_KEY_ENV, key_file_for
    from store.db import sqlite_file

    if os.environ.get(DATA_KEY_ENV, "").strip():
        where = f"{DATA_KEY_ENV} and {INDEX_KEY_ENV} (the environment)"
    else:
        path = sqlite_file(url)
        where = f"the key file {key_file_for(str(path))}" if path else DATA_KEY_ENV
    return (
        f"Personal data in it is encrypted with the keys in {where}, which are NOT in the "
        "backup: without them the backup cannot be read. Keep a copy of the keys apart from "
        "the backups (not on the same disk or tape)."
    )


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write")],
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Back up the database while the bot runs (SQLite online backup, or pg_dump).

    The encryption keys are not in the backup: keep them separately.
    """
    from store.backup import (
        BackupError,
        backup_sqlite,
        pg_command,
        pg_dump,
        pg_dump_available,
    )
    from store.db import sqlite_file

    cfg = _config_or_exit(config)
    url = cfg.database.url
    path = sqlite_file(url)
    try:
        if path is not None:
            done = asyncio.run(backup_sqlite(path, file))
            out.print(
                f"backed up {path} to {done.path} ({done.size // 1024} KiB, database revision "
                f"{done.revision})",
                highlight=False,
            )
        elif url.startswith("postgresql"):
            if not pg_dump_available():
                command = pg_command("pg_dump", url, "--format=custom", "--file", str(file))
                err.print(
                    "pg_dump is not on PATH (Debian: apt install postgresql-client). Back up "
                    f"with\n  PGPASSWORD=… {command.shown()}\nand restore with pg_restore "
                    "(README, Backups).",
                    highlight=False,
                )
                raise typer.Exit(code=1)
            asyncio.run(pg_dump(url, file, os.environ))
            out.print(f"pg_dump wrote {file} (custom format: restore with pg_restore)")
        else:
            err.print("an in-memory database has nothing to back up")
            raise typer.Exit(code=1)
    except BackupError as error:
        err.print(f"[bold red]Backup failed[/]: {error}", highlight=False)
        raise typer.Exit(code=1) from None
    out.print(_keys_note(url), highlight=False)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `otklik backup`")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already holds data")
    ] = False,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Restore an SQLite backup (stop the bot first), then migrate it to this version.

    Needs the keys it was encrypted with: OTKLIK_DATA_KEY or the key file beside the database.
    """
    from store.backup import BackupError, pg_command, restore_sqlite
    from store.crypto import KeyringError, existing_keyring, key_file_for
    from store.db import sqlite_file

    cfg = _config_or_exit(config)
    url = cfg.database.url
    path = sqlite_file(url)
    if path is None:
        command = pg_command("pg_restore", url, "--clean", "--if-exists", "--no-owner", str(file))
        err.print(
            "PostgreSQL: stop the bot and restore the pg_dump file with\n"
            f"  PGPASSWORD=… {command.shown()}\n"
            "then start the bot (or run `otklik db upgrade`): migrations bring it up to date.",
            highlight=False,
        )
        raise typer.Exit(code=1)
    try:
        keyring = existing_keyring(url, os.environ)
    except KeyringError as error:
        err.print(f"[bold red]Encryption keys are not usable[/]\n{error}", highlight=False)
        raise typer.Exit(code=2) from None
    if keyring is None:
        err.print(
            "[bold red]No keys for the restored data[/]: set OTKLIK_DATA_KEY and "
            f"OTKLIK_INDEX_KEY, or put the backed-up server's key file at {key_file_for(str(path))}"
            ". The backup's personal data is encrypted with them.",
            highlight=False,
        )
        raise typer.Exit(code=2)
    try:
        revision = restore_sqlite(file, path, keyring, force=force)
    except BackupError as error:
        err.print(f"[bold red]Restore refused[/]: {error}", highlight=False)
        raise typer.Exit(code=1) from None

    async def upgrade() -> str | None:
        database = Database(url, keyring=keyring)
        try:
            await database.upgrade()
            return await database.current_revision()
        finally:
            await database.dispose()

    head = asyncio.run(upgrade())
    out.print(f"restored {file} into {path} (revision {revision}, now {head})", highlight=False)


@app.command("chats")
def chats(config: ConfigOption = Path("config.yaml")) -> None:
    """The groups and rooms the bot has seen, with their ids and topics.

    With what the config uses each for. Private chats are never kept."""
    from bot.chat.seen import config_uses
    from bot.model import SeenChat

    cfg = _config_or_exit(config)

    async def seen() -> list[SeenChat]:
        database = Database(cfg.database.url)
        try:
            await database.upgrade()
            async with database.reader() as uow:
                return await uow.chats.all()
        finally:
            await database.dispose()

    found = asyncio.run(seen())
    uses = config_uses(cfg)
    tz = cfg.tz

    def when(at: datetime) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    # Plain lines, not a table: an id must never be cut to fit the terminal.
    for chat in found:
        used = uses.pop((chat.transport, chat.chat), [])
        out.print(
            f"{chat.transport} {chat.chat} «{chat.title}» {chat.kind}\n"
            f"  used as: {', '.join(used) or 'nothing (not in the config)'}\n"
            f"  seen: {when(chat.first_seen)} … {when(chat.last_seen)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        for topic, name in sorted(chat.topics.items()):
            out.print(f"  topic {topic} «{name or '?'}»", highlight=False, markup=False)
    for (transport, chat_id), used in uses.items():
        out.print(
            f"{transport} {chat_id}: never seen\n  used as: {', '.join(used)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not found:
        out.print(
            "No group has been seen yet: add the bot to the group, start it and write there "
            "(or send /ids)."
        )


@app.command("telegram-webhook")
def telegram_webhook(
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Delete the webhook (to go back to long polling)"),
    ] = False,
    drop_pending: Annotated[
        bool,
        typer.Option("--drop-pending", help="With --delete: drop the updates still waiting"),
    ] = False,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """What Telegram says about the bot's webhook (URL, updates waiting, last error).

    With --delete, deletes it. Running instances in webhook mode set it again at their next
    start; in polling mode the leader deletes it by itself."""
    cfg = _config_or_exit(config)
    telegram = cfg.telegram
    if telegram is None or not telegram.enabled:
        out.print("Telegram is not configured (telegram.token is empty).")
        raise typer.Exit(code=2)
    from aiogram import Bot
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramAPIError

    from handlers.telegram.session import TelegramSession

    async def ask() -> list[str]:
        session = TelegramSession(api=TelegramAPIServer.from_base(telegram.api_base))
        bot = Bot(telegram.token, session=session)
        try:
            if delete:
                await bot.delete_webhook(drop_pending_updates=drop_pending)
            info = await bot.get_webhook_info()
        finally:
            await session.close()
        lines = [
            f"url: {info.url or '(none: the bot polls)'}",
            f"pending updates: {info.pending_update_count}",
        ]
        if info.max_connections is not None:
            lines.append(f"max connections: {info.max_connections}")
        if info.allowed_updates is not None:
            lines.append(f"update types: {', '.join(info.allowed_updates)}")
        if info.last_error_date is not None:
            when = info.last_error_date.astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"last error: {when} {info.last_error_message or ''}")
        return lines

    try:
        lines = asyncio.run(ask())
    except TelegramAPIError as error:
        out.print(f"Telegram refused: {error.message}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    if delete:
        out.print("Webhook deleted.")
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("route")
def route_text(
    text: Annotated[str, typer.Argument(help="The mention's text")],
    source: Annotated[str, typer.Option("--source", help="The source it came from")] = "api",
    author_label: Annotated[
        list[str] | None,
        typer.Option("--author-label", help="An author label (repeatable): official, media…"),
    ] = None,
    code: Annotated[list[str] | None, typer.Option("--code", help="A code (repeatable)")] = None,
    language: Annotated[
        str | None, typer.Option("--language", help="ru, en or pl; default: detected")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text")] = False,
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """A dry run of intake for one text; stores nothing, opens no database.

    Prints the sentiment, department, priority, codes, the rules that matched or almost
    matched, and the learned router."""
    from bot.clock import SystemClock
    from bot.intake.dry_run import dry_run
    from bot.intake.lemmas import Lemmatiser
    from bot.intake.official import Officials
    from bot.intake.sentiment.analyser import SentimentClassifier
    from bot.intake.sentiment.model import load_model_classifier
    from bot.model import AuthorLabel

    cfg, playbook = _load_or_exit(config)
    try:
        labels = [AuthorLabel(label) for label in author_label or []]
    except ValueError:
        known = ", ".join(label.value for label in AuthorLabel)
        err.print(f"--author-label: one of {known}", highlight=False)
        raise typer.Exit(code=2) from None
    if language is not None and language not in ("ru", "en", "pl"):
        err.print("--language: ru, en or pl", highlight=False)
        raise typer.Exit(code=2)
    classifier = SentimentClassifier(load_lexicon(lexicon_dir(cfg)))
    result = dry_run(
        playbook,
        text,
        source,
        SystemClock().now(),
        labels=labels,
        codes=code or [],
        language=language,
        stem=Lemmatiser().lemma,
        model=load_model_classifier(playbook, classifier, cfg.model.path),
        classifier=classifier,
        router=load_router(cfg) if playbook.routing.learned.enabled else None,
        officials=Officials.from_config(cfg),
    )
    found = result.as_dict()
    if as_json:
        out.print_json(data=found)
        return
    for line in _dry_run_lines(found, cfg):
        out.print(line, highlight=False, markup=False)


def _dry_run_lines(found: dict[str, Any], cfg: Config) -> list[str]:
    s = found["sentiment"]
    # The model's confidence is its probability of a complaint; the lexicon's, its score.
    score = f"p_negative {s['score']:.2f}" if s["by"] == "model" else f"score {s['score']:.2f}"
    lines = [
        f"sentiment: {s['sentiment']} (by the {s['by']}: {s['outcome']}, {score}, "
        f"language {s['language'] or '?'})",
        f"  signals: {', '.join(s['signals']) or '—'}",
    ]
    if found["official"]:
        lines.append("official information: stored as neutral, no case")
    lines.append(f"opens a case: {'yes' if found['opens_case'] else 'no'}")
    department = cfg.department(found["department"])
    name = f" ({department.name})" if department else ""
    how = f"rule {found['rule']}" if found["rule"] else found["basis"]
    lines += [
        f"department: {found['department']}{name} by {how}",
        f"priority: {found['priority']}"
        + (
            f" (critical words: {', '.join(found['critical_words'])})"
            if found["critical_words"]
            else ""
        )
        + (f" (urgent words: {', '.join(found['urgent_words'])})" if found["urgent_words"] else ""),
        f"codes: {', '.join(found['codes']) or '—'}",
        f"sla policy: {found['sla_policy'] or '(by department and priority)'}",
        "rules:" if found["rules"] else "rules: none matched or almost matched",
    ]
    decided = False
    for rule in found["rules"]:
        if rule["matched"]:
            state = "shadowed by an earlier rule" if decided else "MATCHED"
            decided = True
        else:
            state = "almost"
        lines.append(f"  {rule['id']} → {rule['department']}: {state}")
        for c in rule["conditions"]:
            mark = "✓" if c["met"] else "✗"
            detail = ", ".join(c["found"])
            if c["near"]:
                detail = "words there but apart: " + ", ".join(c["near"])
            lines.append(f"    {mark} {c['name']}{': ' + detail if detail else ''}")
    router = found["router"]
    if router is None:
        lines.append("learned router: off")
    else:
        lines.append(
            f"learned router: {router['department']} ({router['confidence']:.2f})"
            f"{' — ' + ', '.join(router['signals']) if router['signals'] else ''}"
        )
    return lines


@app.command()
def run(config: ConfigOption = Path("config.yaml")) -> None:
    """Run the bot: transports, API, scheduler and outbox worker."""
    from handlers.app import CannotStart, run_forever  # late: the other commands stay light
    from handlers.logs import configure_logging

    cfg, playbook = _load_or_exit(config, serving=True)
    configure_logging(cfg.log_level, cfg.log_format)
    try:
        asyncio.run(run_forever(cfg, playbook))
    except CannotStart as error:
        _print_problems(str(error))
        raise typer.Exit(code=2) from None


if __name__ == "__main__":
    app()
