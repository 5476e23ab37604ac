"""Erasure: `forget` leaves no trace of an author's personal data in the database file (or a
PostgreSQL dump), keeps an audit stub, is idempotent and keeps the audit chain verifiable;
the retention policy erases what is due and nothing else."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.cases.erasure import Erasure, Forgotten, months_before
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest, NoRight
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.chat.inbound import Answer, Command, Inbound
from bot.clock import FrozenClock
from bot.messages.outbox import Destination
from bot.messages.texts import texts_for
from bot.messages.views import notice_view
from bot.model import (
    Action,
    Attachment,
    AttachmentKind,
    DeptRole,
    EventKind,
    GlobalRole,
    Identity,
    IgnoreReason,
    Sentiment,
)
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store import crypto
from store.db import Database
from tests.doubles.support import make_config, make_mention

HOUSING = CaseOpening("housing")
ADMIN = Actor("admin", "Админ", global_roles=frozenset({GlobalRole.ADMIN}))
SPEC = Actor("spec", "Анна Иванова", {"housing": frozenset({DeptRole.SPECIALIST})})

# The forgotten author's known values: none of them may survive anywhere.
NAME = "Евлампий Кривошеев"
IDENTITY = "id-evlampiy-4711"
PROFILE = "https://vk.com/evlampiy4711"
TEXT = "Кривоколенный переулок затопило, прорвало трубу, третий день никто не чинит"
URL = "https://vk.com/wall-1_93817"
FORGOTTEN_VALUES = (NAME, IDENTITY, PROFILE, "Кривоколенный", "wall-1_93817", "evlampiy")
# Somebody else's: erasure must leave them alone.
OTHER_TEXT = "Во дворе на Садовой нет освещения уже неделю"


@pytest.fixture(autouse=True)
def in_clear() -> Iterator[None]:
    """Encryption at rest off (store/crypto.py): the greps below must find what erasure keeps
    and not find what it erased, so erasure is shown to remove the data itself."""
    crypto.pin(crypto.Keyring.plaintext())
    yield
    crypto.pin(None)


@pytest.fixture
def cases(tmp_path: Path, database: Database, clock: FrozenClock) -> CaseService:
    config = make_config(tmp_path, database.url)
    return CaseService(
        database.uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=load_playbook(config.playbooks.path).routing,
    )


@pytest.fixture
def erasure(cases: CaseService, database: Database, clock: FrozenClock) -> Erasure:
    return Erasure(database.uow, clock, cases)


async def dump(database: Database, tmp_path: Path) -> bytes:
    """Every byte the database keeps: the SQLite file and its log, or a pg_dump."""
    if database.is_sqlite:
        path = Path(make_url(database.url).database or "")
        return b"".join(
            p.read_bytes()
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal"))
            if p.exists()
        )
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed: the PostgreSQL dump cannot be searched")
    async with database.engine.connect() as conn:
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar()
    url = make_url(database.url)
    command = [pg_dump, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", "-n", str(schema), url.database or "test"]
    # In a worker thread: the event loop goes on while pg_dump runs.
    found = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, check=True, timeout=120
    )
    return found.stdout


async def verify(database: Database) -> None:
    async with database.reader() as uow:
        report = await uow.events.verify()
    assert report.ok, report


async def test_forget_leaves_no_trace_and_the_chain_verifies(
    cases: CaseService, erasure: Erasure, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    who = Identity("vk", IDENTITY, NAME, PROFILE)
    first = await cases.intake(
        replace(make_mention("m1", clock.now()), author=who, text=TEXT, url=URL), HOUSING
    )
    second = await cases.intake(
        replace(make_mention("m2", clock.now()), author=who, text=TEXT + "!", url=URL + "_2"),
        None,
    )
    other = await cases.intake(make_mention("m3", clock.now(), text=OTHER_TEXT), HOUSING)
    assert first.case and first.case.id and first.mention and first.mention.author_id
    assert other.case and other.case.id and second.mention
    author_id = first.mention.author_id
    case_id = first.case.id
    # A draft that quotes them, a refused press by them as a stranger in a chat.
    quote = f"{NAME}, здравствуйте! Вы пишете: «прорвало трубу, третий день никто не чинит»."
    await cases.act(case_id, ActionRequest(Action.DRAFT, text=quote), SPEC)
    await cases.act(case_id, ActionRequest(Action.TAKE), Actor.stranger("tg:4711", NAME))
    await cases.act(other.case.id, ActionRequest(Action.DRAFT, text="Работаем над этим"), SPEC)
    async with database.uow() as uow:  # the cards went out: sent payloads hold them too
        for item_id in range(1, 40):
            await uow.outbox.mark_delivered(item_id, clock.now(), f"msg-{item_id}")
        await uow.commit()
    before = await dump(database, tmp_path)
    assert all(value.encode() in before for value in (NAME, IDENTITY, "Кривоколенный"))

    assert isinstance(await erasure.forget(author_id, SPEC), NoRight)  # administrators only
    done = await erasure.forget(author_id, ADMIN)
    assert isinstance(done, Forgotten) and not done.already
    assert done.counts.mentions == 2 and done.counts.identities == 1
    assert done.counts.drafts == 1 and done.counts.events >= 1 and done.counts.outbox >= 1

    after = await dump(database, tmp_path)
    for value in FORGOTTEN_VALUES:
        assert value.encode() not in after, value
    assert OTHER_TEXT.encode() in after and "Работаем над этим".encode() in after
    await verify(database)

    async with database.reader() as uow:
        (stub,) = await uow.events.of_kind(EventKind.AUTHOR_FORGOTTEN)
        card = await uow.authors.get(author_id)
        thread = await uow.mentions.for_case(case_id)
        redrawn = [await uow.outbox.get(n) for n in range(1, 60)]
    assert stub.actor == "admin" and stub.at == clock.now()
    assert stub.payload["author_id"] == author_id and stub.payload["erased"]["mentions"] == 2
    assert card is not None and card.identities == () and card.display_name == "[erased]"
    assert thread[0].text == "[erased]" and thread[0].url is None
    # The card in the chat is redrawn without them.
    edits = [i for i in redrawn if i and i.idempotency_key.endswith(f":edit:forget-{stub.id}")]
    assert edits and all(NAME not in str(i.payload) for i in edits)

    again = await erasure.forget(author_id, ADMIN)
    assert isinstance(again, Forgotten) and again.already and again.event_id == stub.id
    assert await erasure.forget(999_999, ADMIN) is None
    async with database.reader() as uow:
        assert len(await uow.events.of_kind(EventKind.AUTHOR_FORGOTTEN)) == 1
    await verify(database)


async def test_retention_erases_what_is_due_and_nothing_else(
    cases: CaseService, erasure: Erasure, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    start = clock.now()

    async def opened(n: str, author: str, words: str) -> int:
        result = await cases.intake(
            make_mention(n, clock.now(), text=words, author=author), HOUSING
        )
        assert result.case and result.case.id
        return result.case.id

    old = await opened("1", "old-author", "Старая жалоба про подъезд номер семь на Тверской")
    due = await opened("2", "open-author", "Открытая жалоба про лифт на Арбате давно")
    loose_old = await cases.intake(
        make_mention(
            "3", clock.now(), "Просто мнение про парк Горького", "loose-old", Sentiment.POSITIVE
        ),
        None,
    )
    await cases.act(old, ActionRequest(Action.IGNORE, reason=IgnoreReason.SPAM), SPEC)
    clock.set(months_before(start, -23))  # 23 months later: recent enough to keep
    recent = await opened("4", "recent-author", "Свежая жалоба про мусор у школы номер два")
    await cases.act(recent, ActionRequest(Action.IGNORE, reason=IgnoreReason.SPAM), SPEC)
    clock.set(months_before(start, -25))

    run = await erasure.apply_retention(24)
    assert run.batches == 1 and run.cutoff == months_before(clock.now(), 24)
    assert run.counts.mentions == 2 and run.counts.authors == 2

    after = await dump(database, tmp_path)
    for gone in ("подъезд номер семь", "old-author", "парк Горького", "loose-old"):
        assert gone.encode() not in after, gone
    for kept in ("лифт на Арбате", "open-author", "мусор у школы", "recent-author"):
        assert kept.encode() in after, kept
    await verify(database)
    async with database.reader() as uow:
        (logged,) = await uow.events.of_kind(EventKind.RETENTION_ERASED)
        assert (await uow.authors.get(loose_old.mention.author_id)).identities == ()  # type: ignore[union-attr]
    assert logged.actor == "system" and logged.payload["cases"] == [old]
    assert logged.payload["erased"]["mentions"] == 2 and logged.payload["months"] == 24

    # The next day: nothing new is due, nothing is written.
    clock.advance(timedelta(days=1))
    assert (await erasure.apply_retention(24)).batches == 0
    async with database.reader() as uow:
        assert len(await uow.events.of_kind(EventKind.RETENTION_ERASED)) == 1
    assert due != recent


def test_months_before_keeps_the_end_of_the_month() -> None:
    from datetime import UTC, datetime

    assert months_before(datetime(2026, 3, 31, 12, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, 12, tzinfo=UTC
    )
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(
        2024, 12, 15, tzinfo=UTC
    )


async def test_forget_command_in_any_transport_for_administrators_only(
    tmp_path: Path, cases: CaseService, erasure: Erasure, database: Database, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    texts = texts_for(config.playbooks.templates, config.locale)
    inbound = Inbound(cases, Answers(cases, directory, texts, erasure=erasure), directory, texts)
    opened = await cases.intake(make_mention("1", clock.now(), text=TEXT, author=IDENTITY), HOUSING)
    assert opened.mention and opened.mention.author_id
    author_id = opened.mention.author_id
    where = Destination("matrix", "!housing:example.org")

    async def forget(actor: Actor, args: str, key: str) -> dict[str, object]:
        assert await inbound.command(Command(where, actor, "forget", args, Answer(key)))
        async with database.reader() as uow:
            items = [await uow.outbox.get(n) for n in range(1, 80)]
        (answer,) = [i for i in items if i and i.idempotency_key.endswith(key)]
        return answer.payload

    assert await forget(SPEC, str(author_id), "c1") == notice_view("ui.no_rights")
    async with database.reader() as uow:
        assert await uow.events.of_kind(EventKind.AUTHOR_FORGOTTEN) == []
    assert await forget(ADMIN, "", "c2") == notice_view("ui.usage_forget")
    assert await forget(ADMIN, "777", "c3") == notice_view("ui.unknown_author", author_id=777)
    done = await forget(ADMIN, str(author_id), "c4")
    assert done["key"] == "ui.forgotten" and done["params"]["mentions"] == 1  # type: ignore[index]
    again = await forget(ADMIN, str(author_id), "c5")
    assert again == notice_view("ui.already_forgotten", author_id=author_id)
    async with database.reader() as uow:
        assert len(await uow.events.of_kind(EventKind.AUTHOR_FORGOTTEN)) == 1


async def test_forget_erases_attachments_and_the_photo_items_that_name_them(
    cases: CaseService, erasure: Erasure, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    file_name = "Кривошеев_акт_затопления.pdf"
    caption = "Акт о затоплении квартиры Евлампия"
    photo_id = "telegram:AgACAgIAAxkBAAIevlampiy4711photo"
    attachments = (
        Attachment(AttachmentKind.PHOTO, photo_id, "", "image/jpeg", 40_000),
        Attachment(
            AttachmentKind.DOCUMENT, URL + "/akt.pdf", file_name, "application/pdf", 9, caption
        ),
    )
    who = Identity("vk", IDENTITY, NAME, PROFILE)
    mention = replace(make_mention("m1", clock.now()), author=who, text=TEXT, url=URL)
    opened = await cases.intake(replace(mention, attachments=attachments), HOUSING)
    assert opened.case and opened.mention and opened.mention.author_id
    async with database.uow() as uow:  # the card that lists them, and the photo, went out
        queued = [await uow.outbox.get(n) for n in range(1, 10)]
        assert [i.payload["view"] for i in queued if i] == ["card", "attachment"]
        for item_id in range(1, 10):
            await uow.outbox.mark_delivered(item_id, clock.now(), f"msg-{item_id}")
        await uow.commit()
    before = await dump(database, tmp_path)
    assert file_name.encode() in before and photo_id.encode() in before

    done = await erasure.forget(opened.mention.author_id, ADMIN)
    assert isinstance(done, Forgotten) and done.counts.mentions == 1

    after = await dump(database, tmp_path)
    for value in (file_name, caption, photo_id, "akt.pdf"):
        assert value.encode() not in after, value
    async with database.reader() as uow:
        (kept,) = await uow.mentions.for_case(opened.case.id or 0)
    assert kept.attachments == ()
    await verify(database)
