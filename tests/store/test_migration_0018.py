"""Drafts know their kind and when they went public (migration 0018), on both backends: a
round trip of a case with an answer, a follow-up and a correction; the upgrade fills what
older drafts published before it from their publish events; downgrade and upgrade again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alembic.script import ScriptDirectory

from bot.model import (
    Case,
    CaseState,
    Draft,
    DraftKind,
    DraftStatus,
    Event,
    Priority,
)
from store.db import Database, alembic_config

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def _draft(version: int, kind: DraftKind, published: bool, by_bot: bool = False) -> Draft:
    return Draft(
        version,
        f"text v{version}",
        "spec",
        T0 + version * M,
        status=DraftStatus.APPROVED,
        reviewer="appr",
        reviewed_at=T0 + version * M,
        kind=kind,
        published_at=T0 + (version + 1) * M if published else None,
        published_by_bot=by_bot,
    )


def _published_case(drafts: tuple[Draft, ...]) -> Case:
    return Case(
        id=None,
        department="housing",
        state=CaseState.PUBLISHED,
        priority=Priority.NORMAL,
        created_at=T0,
        source="telegram",
        assignee="spec",
        approved_at=T0 + M,
        published_at=T0 + 2 * M,
        first_touched_at=T0 + 2 * M,
        drafts=drafts,
    )


async def _add(database: Database, case: Case) -> Case:
    async with database.uow() as uow:
        stored = await uow.cases.add(replace(case, drafts=()))
        await uow.commit()
    async with database.uow() as uow:
        await uow.cases.save(replace(case, id=stored.id, version=1), expected_version=0)
        await uow.commit()
    return replace(case, id=stored.id, version=1)


async def test_a_follow_up_and_a_correction_round_trip(database: Database) -> None:
    case = await _add(
        database,
        _published_case(
            (
                _draft(1, DraftKind.ANSWER, True, by_bot=True),
                _draft(2, DraftKind.FOLLOW_UP, True, by_bot=True),
                replace(
                    _draft(3, DraftKind.CORRECTION, False),
                    status=DraftStatus.PENDING,
                    reviewer=None,
                    reviewed_at=None,
                ),
            )
        ),
    )
    assert case.id is not None
    async with database.uow() as uow:
        loaded = await uow.cases.get(case.id)
    assert loaded == case
    assert loaded is not None and loaded.published_draft is not None
    assert loaded.published_draft.version == 2


async def test_the_upgrade_finds_what_went_public_in_the_events(database: Database) -> None:
    by_bot = await _add(database, _published_case((_draft(1, DraftKind.ANSWER, False),)))
    by_hand = await _add(
        database,
        _published_case((_draft(1, DraftKind.ANSWER, False), _draft(2, DraftKind.ANSWER, False))),
    )
    drill = await _add(database, _published_case((_draft(1, DraftKind.ANSWER, False),)))
    await database.downgrade("0017")
    moment = T0 + 30 * M
    async with database.uow() as uow:
        await uow.events.append(
            [
                Event(by_bot.id, moment, "spec", "publish", None, None, {"version": 1}),
                Event(by_hand.id, moment, "spec", "mark_published", None, None, {"version": 2}),
                Event(
                    drill.id,
                    moment,
                    "spec",
                    "publish",
                    None,
                    None,
                    {"version": 1, "note": "simulated"},
                ),
            ]
        )
        await uow.commit()

    await database.upgrade()

    async with database.uow() as uow:
        cases = await uow.cases.get_many([c.id for c in (by_bot, by_hand, drill) if c.id])
    published = {
        case_id: [(d.version, d.kind, d.published_at, d.published_by_bot) for d in c.drafts]
        for case_id, c in cases.items()
    }
    assert published == {
        by_bot.id: [(1, DraftKind.ANSWER, moment, True)],
        by_hand.id: [(1, DraftKind.ANSWER, None, False), (2, DraftKind.ANSWER, moment, False)],
        drill.id: [(1, DraftKind.ANSWER, moment, False)],  # a drill's publish posted nothing
    }
    await database.downgrade("0017")
    await database.upgrade()
    assert await database.current_revision() == HEAD
